"""Every colour the console's stylesheet puts text in meets WCAG AA contrast (4.5:1) on its background."""

from __future__ import annotations

import re

from tests.support.paths import ROOT

CSS = ROOT / "connector" / "console" / "static" / "console.css"
WHITE = "#ffffff"


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4))


def _luminance(hex_colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_contrast_formula_against_known_values():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # the classic just-too-light grey


def _rules() -> list[tuple[str, dict[str, str]]]:
    text = re.sub(r"/\*.*?\*/", "", CSS.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"@media[^{]*\{", "", text)
    out = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        props = dict((k.strip(), v.strip()) for k, v in (p.split(":", 1) for p in body.split(";") if ":" in p))
        out.append((selector.strip(), props))
    return out


def test_every_text_colour_has_enough_contrast_on_its_background():
    checked = 0
    for selector, props in _rules():
        fg = props.get("color")
        if not fg or not fg.startswith("#"):
            continue
        bg = props.get("background", WHITE).split()[0]
        if not bg.startswith("#"):
            bg = WHITE
        if selector.startswith("header.top") and "background" not in props:
            bg = "#12355b"  # text in the header sits on its dark blue
        assert contrast(fg, bg) >= 4.5, f"{selector}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"
        checked += 1
    assert checked >= 10  # the stylesheet's text colours were found at all
