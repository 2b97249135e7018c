// Load the built docs site in a real, headless Chromium and check that it works offline.
//
//   node tests/browser_check.mjs --base http://127.0.0.1:PORT/ --pages "index.html lessons/..."
//
// tests/test_docs_site.py builds the site, serves it on 127.0.0.1 and runs this script; it
// prints one JSON report on stdout and exits 1 when any check failed. Checked on every page:
//   - no request leaves the loopback server (each one is aborted and reported);
//   - no console error, page error or HTTP error (except Material's sitemap.xml 404s);
//   - every .arithmatex element was rendered by KaTeX, and no .katex-error exists;
//   - KaTeX's fonts loaded wherever there is math;
//   - every image (the lesson figures) decoded, naturalWidth > 0;
//   - at every width (--widths, 1280 and 390 px: a desktop and a phone) the page as a whole
//     never scrolls sideways (wide formulas, tables and code scroll inside their own box).
// And once: the search finds "label smoothing" in English and 标签平滑, 交叉熵 and 温度缩放
// in the zh edition (a zh lesson among the hits), with no raw TeX in any result; and the
// language switch of a lesson page goes to its zh page and back.
import { chromium } from "playwright-core";

function parseArgs(argv) {
  const args = {
    base: null, pages: [], chromium: "/usr/bin/chromium", timeout: 30000, tabs: 2,
    widths: [1280, 390],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === "--base") args.base = value;
    else if (key === "--pages") args.pages = value.split(/\s+/).filter(Boolean);
    else if (key === "--chromium") args.chromium = value;
    else if (key === "--timeout") args.timeout = Number(value);
    else if (key === "--tabs") args.tabs = Math.max(1, Number(value));
    else if (key === "--widths") args.widths = value.split(",").map(Number);
    else throw new Error(`unknown argument ${key}`);
  }
  if (!args.base || args.pages.length === 0) throw new Error("need --base URL and --pages");
  return args;
}

// Material's "stay on page" code fetches sitemap.xml files that need not exist.
const allowedMissing = (url) => URL.canParse(url) && new URL(url).pathname.endsWith("/sitemap.xml");

async function checkPage(page, url, problems, stats) {
  const where = new URL(url).pathname;
  const started = Date.now();
  try {
    await checkPageOnce(page, url, where, problems, stats);
  } finally {
    stats.seconds[where] = (Date.now() - started) / 1000;
  }
}

async function checkPageOnce(page, url, where, problems, stats) {
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response || !response.ok()) {
    problems.push(`${where}: HTTP ${response ? response.status() : "no response"}`);
    return;
  }
  // KaTeX runs on Material's document$ after load; wait until every formula is rendered
  // (or time out, which the count below then reports).
  await page
    .waitForFunction(
      () =>
        [...document.querySelectorAll(".arithmatex")].every((el) => el.querySelector(".katex")),
      null,
      { timeout: 10000 },
    )
    .catch(() => {});
  const result = await page.evaluate(async () => {
    await document.fonts.ready;
    const images = [...document.querySelectorAll("article img")];
    await Promise.all(
      images.map((img) =>
        img.complete ? null : new Promise((done) => img.addEventListener("loadend", done)),
      ),
    );
    const math = [...document.querySelectorAll(".arithmatex")];
    return {
      math: math.length,
      unrendered: math.filter((el) => !el.querySelector(".katex")).map((el) => el.textContent.slice(0, 60)),
      errors: [...document.querySelectorAll(".katex-error")].map((el) => el.textContent.slice(0, 60)),
      katexFonts: [...document.fonts]
        .filter((f) => f.family.replace(/"/g, "").startsWith("KaTeX") && f.status === "loaded")
        .map((f) => f.family),
      images: images.map((img) => ({ src: img.getAttribute("src"), width: img.naturalWidth })),
      exercises: document.querySelectorAll(".lsce-exercise").length,
      width: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      // the first element that sticks out of the window, for the report
      wide: [...document.querySelectorAll("article *")]
        .find((el) => el.getBoundingClientRect().right > window.innerWidth + 1 &&
          !el.closest(".katex-display, .md-typeset__scrollwrap, pre, .md-typeset__table"))
        ?.outerHTML.slice(0, 120) ?? null,
    };
  });
  if (result.scrollWidth > result.width + 1) {
    problems.push(
      `${where}: the page scrolls sideways at ${result.width} px ` +
        `(${result.scrollWidth} px wide; first wide element: ${result.wide})`,
    );
  }
  stats.pages += 1;
  stats.formulas += result.math;
  stats.images += result.images.length;
  stats.exercises += result.exercises;
  for (const text of result.unrendered) problems.push(`${where}: math not rendered: ${text}`);
  for (const text of result.errors) problems.push(`${where}: KaTeX error: ${text}`);
  if (result.math > 0 && result.katexFonts.length === 0) {
    problems.push(`${where}: ${result.math} formulas but no KaTeX font loaded`);
  }
  for (const img of result.images) {
    if (img.width === 0) problems.push(`${where}: image ${img.src} did not load (naturalWidth 0)`);
  }
}

// Types a query into Material's search and returns the hits' links and texts. The index
// loads in a web worker and typing before it is ready finds nothing, so keep re-typing
// until results appear or the time is up.
async function search(page, url, query) {
  await page.goto(url, { waitUntil: "load" });
  await page.keyboard.press("s");
  const input = page.locator("input.md-search__input");
  await input.waitFor({ state: "visible", timeout: 5000 });
  const deadline = Date.now() + 15000;
  let hits = [];
  while (Date.now() < deadline && hits.length === 0) {
    await input.fill(query);
    await input.dispatchEvent("keyup"); // fill() sends no key events; Material listens for them
    await page.waitForTimeout(500);
    hits = await page.$$eval(".md-search-result__item a", (links) =>
      links.map((a) => ({ href: a.href, text: a.textContent })),
    );
  }
  return hits;
}

async function checkSearch(page, base, problems) {
  const queries = [
    ["label smoothing", base, "/lessons/"],
    ["标签平滑", new URL("zh/", base).href, "/zh/lessons/"],
    ["交叉熵", new URL("zh/", base).href, "/zh/lessons/"],
    ["温度缩放", new URL("zh/", base).href, "/zh/lessons/"],
  ];
  let total = 0;
  for (const [query, url, lessonPath] of queries) {
    const hits = await search(page, url, query);
    total += hits.length;
    if (hits.length === 0) problems.push(`search: no results for "${query}"`);
    else if (!hits.some((hit) => new URL(hit.href).pathname.includes(lessonPath))) {
      problems.push(`search: "${query}" finds no page under ${lessonPath}`);
    }
    for (const hit of hits) {
      if (/\\[(\[]|\\frac|\\operatorname/.test(hit.text)) {
        problems.push(`search: "${query}" shows raw TeX: ${hit.text.slice(0, 80)}`);
      }
    }
  }
  return total;
}

// The language switch of a lesson page leads to the same lesson in the other language.
async function checkLanguageSwitch(page, base, problems) {
  const english = new URL("lessons/01-softmax/", base).href;
  const chinese = new URL("zh/lessons/01-softmax/", base).href;
  for (const [from, lang, to] of [[english, "zh", chinese], [chinese, "en", english]]) {
    await page.goto(from, { waitUntil: "load" });
    const href = await page.$eval(`a.md-select__link[hreflang="${lang}"]`, (a) => a.href)
      .catch(() => null);
    if (href === null) {
      problems.push(`language switch: ${new URL(from).pathname} has no link to ${lang}`);
      continue;
    }
    const response = await page.goto(href, { waitUntil: "load" });
    if (new URL(page.url()).pathname !== new URL(to).pathname || !response?.ok()) {
      problems.push(`language switch: ${new URL(from).pathname} → ${page.url()}, not ${to}`);
    }
  }
}

// A tab that reports console errors, page errors and failed or refused requests.
async function openTab(context, base, problems) {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const where = msg.location()?.url ?? "";
    if (msg.text().startsWith("Failed to load resource") && allowedMissing(where)) return;
    problems.push(`console error on ${new URL(page.url()).pathname}: ${msg.text()} ${where}`);
  });
  page.on("pageerror", (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
  page.on("response", (res) => {
    if (res.status() >= 400 && !allowedMissing(res.url())) {
      problems.push(`HTTP ${res.status()} for ${res.url()}`);
    }
  });
  page.on("requestfailed", (req) => {
    const url = new URL(req.url());
    // ERR_ABORTED: the next page.goto cancelled a late request (favicon, search worker).
    const error = req.failure()?.errorText ?? "";
    if (url.host === base.host && error !== "net::ERR_ABORTED" && !allowedMissing(req.url())) {
      problems.push(`request failed: ${req.url()} (${error})`);
    }
  });
  return page;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const base = new URL(args.base);
  const problems = [];
  const stats = { pages: 0, formulas: 0, images: 0, exercises: 0, searchHits: 0, seconds: {} };
  // pages are counted once per width

  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    for (const width of args.widths) {
      const context = await browser.newContext({ viewport: { width, height: 900 } });
      context.setDefaultTimeout(args.timeout);
      // Every request goes through here: anything not for our server is aborted and reported.
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.host === base.host) return route.continue();
        problems.push(`external request: ${route.request().url()}`);
        return route.abort("blockedbyclient");
      });
      // A few tabs side by side: the pages are independent, and this keeps the test short.
      const queue = [...args.pages];
      const tabs = await Promise.all(
        Array.from({ length: Math.min(args.tabs, queue.length) }, () =>
          openTab(context, base, problems),
        ),
      );
      await Promise.all(
        tabs.map(async (tab) => {
          for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
            await checkPage(tab, new URL(path, base).href, problems, stats);
          }
        }),
      );
      if (width === args.widths[0]) {
        const page = tabs[0] ?? (await openTab(context, base, problems));
        const started = Date.now();
        stats.searchHits = await checkSearch(page, base.href, problems);
        await checkLanguageSwitch(page, base.href, problems);
        stats.seconds.search = (Date.now() - started) / 1000;
      }
      await context.close();
    }
  } finally {
    await browser.close();
  }
  const report = { ok: problems.length === 0, problems: [...new Set(problems)], stats };
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.ok ? 0 : 1);
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, problems: [`browser check crashed: ${err.stack}`] }));
  process.exit(1);
});
