/* The small helpers every module of the onboarding page uses: finding and building
 * elements, reading a choice or a count, an address as one line, and telling screen
 * readers what happened. */

export const $ = (id) => document.getElementById(id);
export const form = $('onboarding');

export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

export const checked = (name) => {
  const r = form.querySelector(`input[name="${name}"]:checked`);
  return r ? r.value : null;
};

export function announce(message) {
  // Emptied first so that the same sentence twice is still read out.
  $('live').textContent = '';
  setTimeout(() => { $('live').textContent = message; }, 50);
}

export function count(s) {
  s = s.trim();
  return /^\d{1,9}$/.test(s) ? Number(s) : NaN;
}

export function addressText(a) {
  return [a.recipient, a.line1, a.line2, [a.city, a.region, a.postal_code].filter(Boolean).join(' '),
          a.country, a.phone].filter(Boolean).join(', ');
}
