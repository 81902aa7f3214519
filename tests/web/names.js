// Controls without an accessible name: buttons, links, inputs and text areas
// whose name would be empty for a screen reader. Returns their outer HTML.
() => {
  const nameOf = (el) => {
    const label = el.getAttribute('aria-label');
    if (label && label.trim()) return label;
    const ids = el.getAttribute('aria-labelledby');
    if (ids) {
      const text = ids.split(/\s+/).map((id) => document.getElementById(id)?.textContent || '').join(' ');
      if (text.trim()) return text;
    }
    if (el.labels && [...el.labels].some((l) => l.textContent.trim())) return 'label';
    if (['INPUT', 'TEXTAREA'].includes(el.tagName)) return el.getAttribute('title') || '';
    return el.textContent.trim() || el.getAttribute('title') || '';
  };
  const missing = [];
  for (const el of document.querySelectorAll('button, a[href], input, textarea, select, [role=button]')) {
    if (!el.checkVisibility()) continue;
    if (!nameOf(el).trim()) missing.push(el.outerHTML.slice(0, 120));
  }
  return missing;
}
