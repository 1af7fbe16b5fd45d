// WCAG 2.1 AA checks computed in the page (tests/test_console_a11y.py evaluates this file).
// Returns a function of the check's name, so each check is one page.evaluate call.
(() => {
  const parse = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a),
    g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a),
    a: 1,
  });
  const luminance = ({ r, g, b }) => {
    const lin = (c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  // The colour behind an element: its own and its ancestors' backgrounds, composed on white.
  const background = (el) => {
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg.a > 0) layers.push(bg);
      if (bg && bg.a >= 1) break;
    }
    return layers.reverse().reduce((under, top) => over(top, under), { r: 255, g: 255, b: 255, a: 1 });
  };
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = typeof el.className === "string" && el.className ? `.${el.className.trim().split(/\s+/).join(".")}` : "";
    const text = (el.innerText || el.value || el.getAttribute("aria-label") || "").trim().slice(0, 40);
    return `${el.tagName.toLowerCase()}${id}${cls} "${text}"`;
  };
  const shown = (el) => el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })
    && el.getClientRects().length > 0
    && !el.closest(".sr-only");
  const disabled = (el) => el.matches(":disabled") || !!el.closest("fieldset:disabled");
  const FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex='-1'])";
  const focusables = () => [...document.querySelectorAll(FOCUSABLE)].filter((el) => shown(el) && !disabled(el));
  const name = (el) => {
    if (el.getAttribute("aria-label")?.trim()) return el.getAttribute("aria-label").trim();
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? "").join(" ").trim();
    if (el.labels?.length) return [...el.labels].map((l) => l.textContent).join(" ").trim();
    return (el.getAttribute("title") ?? "").trim();
  };
  const indicator = (el) => {
    const s = getComputedStyle(el);
    return { outline: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}`, style: s.outlineStyle, width: parseFloat(s.outlineWidth), color: s.outlineColor, shadow: s.boxShadow };
  };

  const checks = {
    document() {
      const problems = [];
      if (!document.documentElement.lang) problems.push("the html element has no lang");
      if (!document.title.trim()) problems.push("the page has no title");
      return problems;
    },

    contrast() {
      const problems = [];
      for (const el of document.querySelectorAll("body *")) {
        const text = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent.trim()).join(" ");
        const isField = el.matches("input:not([type=checkbox]):not([type=radio]), select, textarea") && (el.value || "").trim();
        if ((!text && !isField) || !shown(el) || disabled(el)) continue;
        const s = getComputedStyle(el);
        const bg = background(el);
        const fg = over(parse(s.color), bg);
        const size = parseFloat(s.fontSize);
        const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
        const need = large ? 3 : 4.5;
        const got = ratio(fg, bg);
        if (got < need) problems.push(`${describe(el)}: text contrast ${got.toFixed(2)} < ${need}`);
      }
      return problems;
    },

    components() {
      // A control's boundary (its border, else its own background) against what surrounds it.
      const problems = [];
      for (const el of focusables()) {
        if (!el.matches("button, input, select, textarea, .button")) continue;
        const s = getComputedStyle(el);
        const around = background(el.parentElement);
        const border = parse(s.borderTopColor);
        const bw = parseFloat(s.borderTopWidth);
        const fill = parse(s.backgroundColor);
        const edges = [];
        if (bw > 0 && s.borderTopStyle !== "none" && border) edges.push(ratio(over(border, around), around));
        if (fill && fill.a > 0) edges.push(ratio(over(fill, around), around));
        if (el.matches("input[type=checkbox], input[type=radio]")) continue; // drawn by the browser
        const best = Math.max(0, ...edges);
        if (best < 3) problems.push(`${describe(el)}: boundary contrast ${best.toFixed(2)} < 3`);
      }
      return problems;
    },

    labels() {
      const problems = [];
      for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
        if (!name(el)) problems.push(`${describe(el)} has no label`);
      }
      for (const el of document.querySelectorAll("img")) {
        if (!el.hasAttribute("alt")) problems.push(`${describe(el)} has no alt text`);
      }
      for (const el of document.querySelectorAll("canvas, svg")) {
        const alternative = name(el) || el.textContent.trim();
        if (el.getAttribute("role") !== "img" || !alternative) problems.push(`${describe(el)} has no text alternative (role=img and a name)`);
      }
      for (const el of focusables()) {
        if (el.matches("a, button") && !(name(el) || el.textContent.trim())) problems.push(`${describe(el)} has no accessible name`);
      }
      return problems;
    },

    tag() {
      // Number every element that should be reachable by Tab; remember how it looks unfocused.
      document.activeElement?.blur?.();
      return focusables().map((el, i) => {
        el.dataset.a11y = String(i);
        return { index: i, what: describe(el), rest: indicator(el) };
      });
    },

    focused() {
      const el = document.activeElement;
      if (!el || el === document.body || el.dataset.a11y === undefined) return null;
      const now = indicator(el);
      const around = background(el.parentElement);
      let color = null;
      if (now.style !== "none" && now.width > 0) color = parse(now.color);
      else if (now.shadow && now.shadow !== "none") color = parse(now.shadow);
      return { index: Number(el.dataset.a11y), now, contrast: color ? ratio(over(color, around), around) : 0 };
    },
  };
  return checks;
})()
