"""Re-create the vendored KaTeX in docs/assets/vendor/katex/ from node_modules.

The docs site renders math with KaTeX served from the site itself (no CDN). The copy is
committed, so building the docs needs neither Node nor the network; this script re-creates
it from the version pinned in package-lock.json:

    npm ci && python tools/vendor_katex.py          # refresh the copy
    python tools/vendor_katex.py --check            # exit 1 if the copy differs

Only what the site loads is copied: the minified script and style sheet, the auto-render
extension, the woff2 fonts (the first format katex.min.css lists, so browsers never ask
for woff/ttf), the licence, and a VERSION file.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "node_modules" / "katex"
TARGET = ROOT / "docs" / "assets" / "vendor" / "katex"
# Paths relative to node_modules/katex → relative to the vendored folder.
FILES = {
    "dist/katex.min.js": "katex.min.js",
    "dist/katex.min.css": "katex.min.css",
    "dist/contrib/auto-render.min.js": "contrib/auto-render.min.js",
    "LICENSE": "LICENSE",
}


def locked_version(root: Path = ROOT) -> str:
    """The katex version that package-lock.json pins."""
    lock = json.loads((root / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"]["node_modules/katex"]["version"]


def installed_version(source: Path = SOURCE) -> str:
    """The katex version in node_modules, or a clear error when npm ci has not run."""
    manifest = source / "package.json"
    if not manifest.is_file():
        raise SystemExit(f"{source} is missing: run `npm ci` first")
    return json.loads(manifest.read_text(encoding="utf-8"))["version"]


def wanted_files(source: Path = SOURCE) -> dict[Path, str]:
    """Source path → path inside the vendored folder, fonts included."""
    files = {source / src: dst for src, dst in FILES.items()}
    for font in sorted((source / "dist" / "fonts").glob("*.woff2")):
        files[font] = f"fonts/{font.name}"
    return files


def vendor(source: Path = SOURCE, target: Path = TARGET) -> None:
    """Replace the vendored folder with a fresh copy from node_modules."""
    version = installed_version(source)
    if version != locked_version():
        raise SystemExit(
            f"node_modules has katex {version} but package-lock.json pins {locked_version()}: "
            "run `npm ci`"
        )
    if target.exists():
        shutil.rmtree(target)
    for src, dst in wanted_files(source).items():
        (target / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target / dst)
    (target / "VERSION").write_text(version + "\n", encoding="utf-8")
    print(f"vendored katex {version} into {target.relative_to(ROOT)}")


def differences(source: Path = SOURCE, target: Path = TARGET) -> list[str]:
    """What differs between node_modules and the vendored copy (empty when in sync)."""
    problems = []
    files = wanted_files(source)
    for src, dst in files.items():
        if not (target / dst).is_file():
            problems.append(f"missing {dst}")
        elif not filecmp.cmp(src, target / dst, shallow=False):
            problems.append(f"differs {dst}")
    expected = set(files.values()) | {"VERSION"}
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        if path.relative_to(target).as_posix() not in expected:
            problems.append(f"extra {path.relative_to(target).as_posix()}")
    version_file = target / "VERSION"
    if version_file.is_file() and version_file.read_text().strip() != installed_version(
        source
    ):
        problems.append("VERSION differs from node_modules/katex")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem)
        if problems:
            print(
                "vendored KaTeX is out of date: run `npm ci && python tools/vendor_katex.py`"
            )
        return 1 if problems else 0
    vendor()
    return 0


if __name__ == "__main__":
    sys.exit(main())
