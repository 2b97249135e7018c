// Render the math that pymdownx.arithmatex marks (generic mode: \( \) inline, \[ \] display)
// with the vendored KaTeX. Only those delimiters are scanned, so a "$5" in prose stays text.
// Material emits document$ on every page load, so this also runs after instant navigation.
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    // auto-render renders each formula on its own: one that does not parse (an unknown
    // command too) stays as its TeX source and is reported with console.error, which the
    // browser test fails on. With throwOnError: false an unknown command would instead be
    // drawn in red inside an otherwise normal formula, which nothing would notice.
    throwOnError: true,
    strict: "ignore",
  });
});
