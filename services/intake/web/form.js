/* The onboarding form's behaviour: the choices from GET /v1/form, the sections each
 * answer opens, the review step, POST /v1/onboardings, and the confirmation page that
 * follows the onboarding with the status route's long poll.
 *
 * The rules live in intake, not here: the page sends what was typed and shows each
 * reason intake gives at the field it names. The page only refuses what it could not
 * put into a request at all (no license, a user count that is not a number).
 *
 * signin.js signs the partner in; every front-door call goes through its authFetch,
 * which sends the access token. The partner and the submitter are not in the request:
 * the front door takes them from the token. A module, so strict. */
import * as auth from './signin.js';

(function () {
  const FINAL = new Set(['confirmed', 'rejected', 'failed']);
  const PARTNER_DEFAULT = 'partner-default';
  const LICENSE_NAMES = { MDR_CORE: 'MDR Core', MDR_COMPLETE: 'MDR Complete', MDR_CLOUD: 'MDR Cloud' };
  const PRODUCT_NAMES = Object.assign({ BEAUCERON_SAT: 'Beauceron SAT' }, LICENSE_NAMES);
  // Wording only: the order of statuses and stages is the server's. Intake moves the status
  // only forward and lists the stages in the order of the flow, whatever order it heard of
  // them, so the page shows them as given and never sorts them itself.
  const STATUS_TEXT = {
    submitted: 'Submitted; waiting for intake to check it.',
    accepted: 'Accepted; allocating the users.',
    users_allocated: 'Users allocated; provisioning the appliances.',
    appliances_provisioned: 'Appliances provisioned; arranging the shipping.',
    shipping_arranged: 'Shipping arranged; confirming.',
  };
  // Seconds each status request may wait for the outcome (the route takes 1 to 60).
  const LONG_POLL_S = 20;
  // Once confirmed, how often the page asks how its emails went while one is still to
  // be sent, and for how long at most (the notifier retries for about 15 minutes).
  const MAIL_POLL_MS = 3000;
  const MAIL_POLL_FOR_MS = 20 * 60 * 1000;

  const $ = (id) => document.getElementById(id);
  const form = $('onboarding');
  let options = { licenses: [], hosting_regions: [], appliance_skus: [], virtual_recommended_below: 10,
                  max_appliances: 50 };
  let seq = 0;            // stable keys of added sensors and addresses
  let pending = null;     // {key, body}: a submission whose outcome is unknown, sent again as is
  let busy = false;       // a POST is on its way
  let following = 0;      // the long poll of this generation runs; a newer one ends it
  let outcome = null;     // the final status shown on the result page
  let touched = false;    // answers were given that leaving the page would lose

  /* ---- small helpers ---------------------------------------------------------- */

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
    return el;
  }

  const checked = (name) => {
    const r = form.querySelector(`input[name="${name}"]:checked`);
    return r ? r.value : null;
  };
  const text = (id) => $(id).value.trim();
  const optional = (id) => text(id) || null;
  const shown = (el) => el.getClientRects().length > 0;
  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function announce(message) {
    // Emptied first so that the same sentence twice is still read out.
    $('live').textContent = '';
    setTimeout(() => { $('live').textContent = message; }, 50);
  }

  function count(s) {
    s = s.trim();
    return /^\d{1,9}$/.test(s) ? Number(s) : NaN;
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    // randomUUID needs a secure context (https or this machine); getRandomValues does not.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (v) => v.toString(16).padStart(2, '0')).join('');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  /* Replaces a select's options when they changed (so a select being used keeps its
   * state), keeping the chosen value when it is still offered. */
  function setOptions(select, placeholder, items) {
    const want = [['', placeholder]].concat(items);
    const have = Array.from(select.options, (o) => [o.value, o.textContent]);
    if (JSON.stringify(want) === JSON.stringify(have)) return;
    const value = select.value;
    select.replaceChildren(...want.map(([v, t]) => h('option', { value: v, text: t })));
    select.value = items.some(([v]) => v === value) ? value : '';
  }

  /* ---- the choices intake accepts -------------------------------------------- */

  async function loadOptions() {
    try {
      const res = await fetch('/v1/form', { headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`the server answered ${res.status}`);
      options = await res.json();
    } catch (e) {
      $('load-problem').textContent = `The choices of this form could not be loaded (${e.message}); ` +
        'please reload the page.';
      return;
    }
    const offered = new Set(options.licenses.map((l) => l.code));
    for (const r of form.querySelectorAll('input[name="license"]')) r.disabled = !offered.has(r.value);
    refresh();
    form.dataset.ready = 'true';
    auth.start(options.signin, { unsaved: () => touched && $('result').hidden });
  }

  const skuItems = () => options.appliance_skus.map((s) => [s, s]);

  /* ---- appliances and addresses ----------------------------------------------- */

  /* The appliances in request order: the primary first, then each additional sensor. */
  function appliances() {
    const list = [{ key: 'primary', role: 'PRIMARY', select: $('primary_sku') }];
    for (const li of $('sensors').children)
      list.push({ key: li.dataset.key, role: 'SENSOR', select: li.querySelector('select') });
    return list.map((a, i) => Object.assign(a, { index: i, name: i ? `Additional sensor ${i}` : 'Primary appliance' }));
  }

  const addressBlocks = () => Array.from($('addresses').children);

  function addSensor() {
    const key = `sensor-${++seq}`;
    const id = `sku-${key}`;
    const select = h('select', { id, class: 'sku' });
    const remove = h('button', { type: 'button', class: 'secondary remove' });
    const li = h('li', { 'data-key': key }, h('div', { class: 'field' }, h('label', { for: id }), select), remove);
    remove.addEventListener('click', () => {
      li.remove();
      refresh();
      $('add-sensor').focus();
      announce('Sensor removed.');
    });
    $('sensors').append(li);
    refresh();
    select.focus();
  }

  // Each address field: its name in the request, label, whether optional, and more.
  const ADDRESS_FIELDS = [
    ['recipient', 'Recipient (person or department)', { wide: true, autocomplete: 'shipping name' }],
    ['line1', 'Street address', { wide: true, autocomplete: 'shipping address-line1' }],
    ['line2', 'Address line 2 (optional)', { wide: true, autocomplete: 'shipping address-line2' }],
    ['city', 'City', { autocomplete: 'shipping address-level2' }],
    ['region', 'Province or state (optional)', { autocomplete: 'shipping address-level1' }],
    ['postal_code', 'Postal code', { autocomplete: 'shipping postal-code' }],
    ['country', 'Country code', { autocomplete: 'shipping country', maxlength: 2, short: true,
                                  hint: 'Two letters (ISO 3166-1), such as CA or US.' }],
    ['phone', 'Phone (optional)', { type: 'tel', autocomplete: 'shipping tel' }],
  ];

  function addAddress(focus) {
    const key = `address-${++seq}`; // also its ref in the request
    const grid = h('div', { class: 'grid' });
    for (const [name, label, o] of ADDRESS_FIELDS) {
      const id = `${key}-${name}`;
      const hintId = o.hint ? `${id}-hint` : null;
      grid.append(h('div', { class: o.wide ? 'field wide' : 'field' },
        h('label', { for: id, text: label }),
        o.hint ? h('p', { class: 'hint', id: hintId, text: o.hint }) : null,
        h('input', { id, type: o.type || 'text', 'data-name': name, autocomplete: o.autocomplete,
                     maxlength: o.maxlength, class: o.short ? 'short' : null, 'aria-describedby': hintId })));
    }
    const remove = h('button', { type: 'button', class: 'secondary remove' });
    const block = h('fieldset', { id: `fs-${key}`, class: 'address', 'data-key': key }, h('legend'), grid, remove);
    remove.addEventListener('click', () => {
      block.remove();
      refresh();
      $('add-address').focus();
      announce('Address removed.');
    });
    $('addresses').append(block);
    refresh();
    if (focus) block.querySelector('input').focus();
  }

  function addressName(block, i) {
    const v = (name) => block.querySelector(`[data-name="${name}"]`).value.trim();
    const what = [v('recipient'), v('city')].filter(Boolean).join(', ');
    return `Address ${i + 1}${what ? `: ${what}` : ''}`;
  }

  /* The "which address is each appliance for" selects, one per appliance, kept in
   * step with the appliances and the addresses without losing what was chosen. */
  function syncAssignments() {
    const box = $('assignments');
    const rows = new Map(Array.from(box.children, (d) => [d.dataset.key, d]));
    const items = addressBlocks().map((b, i) => [b.dataset.key, addressName(b, i)]);
    appliances().forEach((a, i) => {
      let row = rows.get(a.key);
      if (!row) {
        const id = `ship_to-${a.key}`;
        row = h('div', { class: 'field', 'data-key': a.key }, h('label', { for: id }), h('select', { id }));
      }
      rows.delete(a.key);
      if (box.children[i] !== row) box.insertBefore(row, box.children[i] || null);
      row.querySelector('label').textContent = a.name + (a.select.value ? ` (${a.select.value})` : '');
      const select = row.querySelector('select');
      select.dataset.field = `deployment.appliances[${i}].ship_to`;
      setOptions(select, 'Choose an address', items);
    });
    for (const row of rows.values()) row.remove();
  }

  /* ---- what is shown follows the answers -------------------------------------- */

  function refresh() {
    const license = checked('license');
    const breach = checked('breach');
    const cloud = license === 'MDR_CLOUD';
    $('breach-advice').hidden = breach !== 'yes';
    $('rest').hidden = breach !== 'no';
    $('tier-field').hidden = cloud;
    $('users_tier-label').textContent = `${license ? LICENSE_NAMES[license] : 'MDR'} users`;
    $('sat-field').hidden = license !== 'MDR_COMPLETE';
    $('fs-deployment').hidden = cloud; // MDR Cloud has no appliance
    const kind = checked('deployment_kind');
    $('virtual-fields').hidden = kind !== 'VIRTUAL';
    $('sensor-fields').hidden = kind !== 'NETWORK_SENSORS';
    $('fs-shipping').hidden = cloud || kind !== 'NETWORK_SENSORS';
    $('custom-fields').hidden = checked('shipping') !== 'custom';

    setOptions($('hosting_region'), 'Choose a hosting region', options.hosting_regions.map((r) => [r, r]));
    for (const s of form.querySelectorAll('select.sku')) setOptions(s, 'Choose a model', skuItems());
    Array.from($('sensors').children).forEach((li, i) => {
      li.querySelector('label').textContent = `Additional sensor ${i + 1}`;
      li.querySelector('select').dataset.field = `deployment.appliances[${i + 1}].sku`;
      li.querySelector('button').textContent = `Remove additional sensor ${i + 1}`;
    });
    addressBlocks().forEach((b, i) => {
      b.dataset.field = `deployment.addresses[${i}]`;
      b.querySelector('legend').textContent = `Address ${i + 1}`;
      for (const input of b.querySelectorAll('[data-name]'))
        input.dataset.field = `deployment.addresses[${i}].${input.dataset.name}`;
      b.querySelector('button.remove').textContent = `Remove address ${i + 1}`;
    });
    syncAssignments();

    // The article's advice: below 10 users the fully virtual solution is appropriate.
    const tier = count($('users_tier').value);
    const below = options.virtual_recommended_below || 10;
    const advice = !cloud && tier > 0 && tier < below
      ? `With fewer than ${below} users the fully virtual solution is appropriate, unless the customer ` +
        'needs network packet analysis.'
      : '';
    if ($('virtual-advice').textContent !== advice) $('virtual-advice').textContent = advice;

    $('add-sensor').disabled = appliances().length >= options.max_appliances;
    $('add-address').disabled = addressBlocks().length >= options.max_appliances;
  }

  function setMode(mode) {
    $('edit').hidden = mode !== 'edit';
    $('review').hidden = mode !== 'review';
    form.hidden = mode === 'result';
    $('result').hidden = mode !== 'result';
  }

  /* ---- the request ------------------------------------------------------------ */

  function readAddress(block) {
    const v = (name) => block.querySelector(`[data-name="${name}"]`).value.trim();
    return { ref: block.dataset.key, recipient: v('recipient'), line1: v('line1'), line2: v('line2') || null,
             city: v('city'), region: v('region') || null, postal_code: v('postal_code'),
             country: v('country').toUpperCase(), phone: v('phone') || null };
  }

  function readDeployment() {
    const kind = checked('deployment_kind');
    if (kind === null) return null; // intake names it: a deployment is required
    if (kind === 'VIRTUAL')
      return { kind, hosting_region: $('hosting_region').value || null, appliances: [], addresses: [] };
    const shipping = checked('shipping');
    const assigned = (a) => {
      if (shipping === 'default') return PARTNER_DEFAULT;
      if (shipping !== 'custom') return null;
      return $(`ship_to-${a.key}`).value || null;
    };
    return {
      kind, hosting_region: null,
      appliances: appliances().map((a) => ({ role: a.role, sku: a.select.value, ship_to: assigned(a) })),
      addresses: shipping === 'custom' ? addressBlocks().map(readAddress) : [],
    };
  }

  /* The request as intake takes it (schemas/onboarding.requested.avsc), every field
   * present, without request_id and submitted_at; and what cannot be sent at all. */
  function readRequest() {
    const problems = [];
    const license = checked('license');
    if (!license) problems.push({ field: 'license', message: 'Choose the license to add the customer to.' });
    const users = { tier: 0, cloud: 0, sat: 0 };
    const users_of = (id, field, what) => {
      const n = count($(id).value);
      if (!Number.isNaN(n)) return n;
      problems.push({ field, message: `Enter the number of ${what} as a whole number, such as 25 (0 for none).` });
      return 0;
    };
    if (license !== 'MDR_CLOUD') users.tier = users_of('users_tier', 'users.tier', `${LICENSE_NAMES[license] || 'MDR'} users`);
    users.cloud = users_of('users_cloud', 'users.cloud', 'MDR Cloud users');
    if (license === 'MDR_COMPLETE') users.sat = users_of('users_sat', 'users.sat', 'Beauceron SAT users');
    const breach = checked('breach');
    const request = {
      license,
      breach_or_incident: breach === null ? null : breach === 'yes',
      customer: { legal_name: text('legal_name'), web_site: optional('web_site'),
                  sub_partner_id: optional('sub_partner_id'), portal_admin_email: text('portal_admin_email') },
      users,
      deployment: license === 'MDR_CLOUD' ? null : readDeployment(),
      confirmed: $('confirmed').checked,
    };
    return { request, problems };
  }

  /* ---- reasons at their fields ------------------------------------------------ */

  function clearErrors() {
    for (const p of document.querySelectorAll('.error')) p.remove();
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    for (const el of form.querySelectorAll('.field-invalid, .group-invalid'))
      el.classList.remove('field-invalid', 'group-invalid');
    for (const el of form.querySelectorAll('[aria-describedby]')) {
      const ids = el.getAttribute('aria-describedby').split(/\s+/).filter((x) => x && !x.endsWith('-error'));
      if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
      else el.removeAttribute('aria-describedby');
    }
    $('errors').replaceChildren();
    $('submit-problem').textContent = '';
  }

  // "deployment.addresses[1].city" -> "deployment.addresses[1]" -> "deployment.addresses" -> ...
  const parentField = (f) => {
    const m = /^(.*?)(\.[^.[\]]+|\[\d+\])$/.exec(f);
    return m ? m[1] : '';
  };

  /* The shown element a reason's field path names, or the nearest shown group that
   * holds it; null when none is on the page (the reason is then listed only). */
  function elementFor(field) {
    for (let f = field; f; f = parentField(f)) {
      const el = Array.from(form.querySelectorAll('[data-field]')).find((e) => e.dataset.field === f && shown(e));
      if (el) return el;
      // An appliance without an address: the shipping choice is what is missing.
      if (/^deployment\.appliances\[\d+\]\.ship_to$/.test(f) && shown($('fs-shipping'))) return $('fs-shipping');
    }
    return null;
  }

  const isGroup = (el) => !el.matches('input, select, textarea');

  function focusTarget(el) {
    if (!isGroup(el)) return el;
    return el.querySelector('input:checked') ||
      Array.from(el.querySelectorAll('input, select, button')).find((c) => shown(c) && !c.disabled) || el;
  }

  function describe(el, id) {
    const ids = (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
    if (!ids.includes(id)) el.setAttribute('aria-describedby', ids.concat(id).join(' '));
  }

  function markError(el, message) {
    const id = `${el.id}-error`;
    let p = document.getElementById(id);
    if (p) {
      p.append(` ${message}`); // a second reason for the same field
      return;
    }
    p = h('p', { class: 'error', id }, h('span', { class: 'visually-hidden', text: 'Error: ' }), message);
    if (isGroup(el)) {
      el.classList.add('group-invalid');
      const legend = el.querySelector(':scope > legend');
      if (legend) legend.after(p); else el.prepend(p);
      describe(el, id);
      // A radio group's error is read with each of its radios.
      for (const r of el.querySelectorAll(':scope > .radio > input')) {
        r.setAttribute('aria-invalid', 'true');
        describe(r, id);
      }
    } else {
      el.setAttribute('aria-invalid', 'true');
      describe(el, id);
      const wrap = el.closest('.field');
      if (wrap) wrap.classList.add('field-invalid');
      // Above the control, after its label and hint; a checkbox has its label beside it.
      (el.type === 'checkbox' && wrap ? wrap : el).before(p);
    }
  }

  /* Shows every reason at its field, lists them all at the top (each a link to its
   * field), and moves the focus to the first field in page order. */
  function showReasons(reasons) {
    clearErrors();
    const marked = [];
    const items = reasons.map((r) => {
      const el = r.field ? elementFor(r.field) : null;
      if (!el) return h('li', { text: r.message });
      markError(el, r.message);
      marked.push(el);
      const target = focusTarget(el);
      const a = h('a', { href: `#${target.id}`, text: r.message });
      a.addEventListener('click', (e) => {
        e.preventDefault();
        target.focus();
      });
      return h('li', {}, a);
    });
    const n = reasons.length;
    $('errors').replaceChildren(
      h('h2', { text: 'There is a problem' }),
      h('p', { text: n === 1 ? 'Please correct this and submit again:' : `Please correct these ${n} things and submit again:` }),
      h('ul', {}, ...items));
    marked.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    if (marked.length) focusTarget(marked[0]).focus();
    else $('errors').focus();
  }

  /* ---- review ----------------------------------------------------------------- */

  function entry(dl, term, value) {
    dl.append(h('dt', { text: term }), h('dd', {}, value === null || value === '' ? 'None' : value));
  }

  function addressText(a) {
    return [a.recipient, a.line1, a.line2, [a.city, a.region, a.postal_code].filter(Boolean).join(' '),
            a.country, a.phone].filter(Boolean).join(', ');
  }

  function renderSummary(req) {
    const dl = $('summary');
    dl.replaceChildren();
    const who = auth.user() || {};
    entry(dl, 'Partner', who.partner_id || '');
    entry(dl, 'Submitted by', who.email || '');
    entry(dl, 'License', LICENSE_NAMES[req.license]);
    entry(dl, 'Breach or incident', req.breach_or_incident ? 'Yes' : 'No');
    entry(dl, 'Customer legal name', req.customer.legal_name);
    entry(dl, 'Web site', req.customer.web_site);
    entry(dl, 'Sub-partner', req.customer.sub_partner_id);
    entry(dl, 'MDR Portal administrator', req.customer.portal_admin_email);
    if (req.license !== 'MDR_CLOUD') entry(dl, `${LICENSE_NAMES[req.license]} users`, String(req.users.tier));
    entry(dl, 'MDR Cloud users', String(req.users.cloud));
    if (req.license === 'MDR_COMPLETE') entry(dl, 'Beauceron SAT users', String(req.users.sat));
    const d = req.deployment;
    if (req.license === 'MDR_CLOUD') {
      entry(dl, 'Deployment', 'None: MDR Cloud has no appliance');
    } else if (d === null) {
      entry(dl, 'Deployment', 'Not chosen');
    } else if (d.kind === 'VIRTUAL') {
      entry(dl, 'Deployment', `Fully virtual, hosted in ${d.hosting_region || '(no region chosen)'}`);
    } else {
      entry(dl, 'Deployment', 'Network sensors');
      const names = new Map(d.addresses.map((a, i) => [a.ref, `Address ${i + 1}`]));
      const where = (to) => (to === PARTNER_DEFAULT ? 'our default partner address'
        : to === null ? 'no address chosen' : names.get(to) || to);
      entry(dl, 'Appliances', h('ul', {}, ...d.appliances.map((a, i) =>
        h('li', { text: `${i ? `Additional sensor ${i}` : 'Primary appliance'}: ${a.sku || '(no model chosen)'}, ` +
                        `shipped to ${where(a.ship_to)}` }))));
      if (d.addresses.length)
        entry(dl, 'Shipping addresses', h('ul', {}, ...d.addresses.map((a, i) =>
          h('li', { text: `Address ${i + 1}: ${addressText(a)}` }))));
    }
  }

  /* ---- submitting ------------------------------------------------------------- */

  async function submit() {
    if (busy) return;
    const { request, problems } = readRequest();
    if (problems.length) {
      setMode('edit');
      showReasons(problems);
      return;
    }
    if (!request.confirmed) {
      showReasons([{ field: 'confirmed', message: 'Please check the confirmation box before you submit.' }]);
      return;
    }
    // A retry of the same submission sends the very same request, id and time
    // included, so intake takes it once; changed answers are a new submission.
    const key = JSON.stringify(request);
    if (!pending || pending.key !== key)
      pending = { key, body: JSON.stringify(Object.assign({ request_id: newId() }, request, { submitted_at: Date.now() })) };
    const sent = pending;
    clearErrors();
    busy = true;
    $('submit-button').setAttribute('aria-disabled', 'true');
    announce('Submitting the request.');
    let res = null;
    let answer = {};
    try {
      res = await auth.authFetch('/v1/onboardings', { method: 'POST', body: sent.body,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' } });
      answer = await res.json().catch(() => ({}));
    } catch (e) {
      res = null;
      answer = { error: `no answer came (${e.message})` };
    } finally {
      busy = false;
      $('submit-button').removeAttribute('aria-disabled');
    }
    if (res && res.status === 202) {
      pending = null;
      showSubmitted(JSON.parse(sent.body), answer);
    } else if (res && res.status === 422) {
      pending = null; // nothing was recorded: a corrected request is a new submission
      setMode('edit');
      $('confirmed').checked = false;
      showReasons(answer.reasons || []);
    } else if (res && res.status === 401) {
      $('submit-problem').textContent = 'The request was not sent: you are not signed in any more. Sign in again ' +
        'at the top of the page.';
    } else if (res && res.status >= 400 && res.status < 500) {
      pending = null;
      $('submit-problem').textContent = `The request was not taken: ${answer.error || `the server answered ${res.status}`}.`;
    } else {
      // Unknown outcome (no answer, 503): the same request may be sent again safely.
      $('submit-problem').textContent = `The request was not confirmed as received: ${answer.error ||
        `the server answered ${res ? res.status : 'nothing'}`}. Press Submit to try again; the same request ` +
        'is sent again, so the customer cannot be onboarded twice.';
    }
  }

  /* ---- the confirmation page -------------------------------------------------- */

  function showSubmitted(request, answer) {
    const email = (auth.user() || {}).email || 'your email address'; // the front door's submitter
    outcome = null;
    setMode('result');
    const result = $('result');
    result.dataset.status = 'submitted';
    result.dataset.onboardingId = answer.onboarding_id;
    $('result-title').textContent = 'Onboarding request submitted';
    $('result-intro').textContent = `We are confirming your new customer, ${request.customer.legal_name}, and ` +
      `their users. An email will be sent to you at ${email} when the onboarding is ` +
      `complete, and ${request.customer.portal_admin_email} will be invited to the MDR Portal.`;
    $('result-progress').textContent = STATUS_TEXT.submitted;
    $('result-body').replaceChildren(...advice(answer.warnings));
    $('correct-button').hidden = true;
    $('result-title').focus();
    follow(answer.status_url || `/v1/onboardings/${answer.onboarding_id}`);
  }

  function advice(warnings) {
    if (!warnings || !warnings.length) return [];
    return [h('h3', { text: 'Advice' }), h('ul', { id: 'result-warnings' }, ...warnings.map((w) => h('li', { text: w.message })))];
  }

  /* Follows the onboarding with the long poll until it is confirmed, refused or failed;
   * a lost connection is tried again. */
  async function follow(url) {
    const mine = ++following;
    let mailsSince = 0;
    for (;;) {
      let res = null;
      let status = null;
      try {
        res = await auth.authFetch(`${url}?wait=${LONG_POLL_S}`, { headers: { Accept: 'application/json' },
                                                                   cache: 'no-store' });
        if (res.status === 200) status = await res.json();
      } catch (e) {
        res = null;
      }
      if (mine !== following) return;
      if (res && res.status === 401) {
        $('result-progress').textContent = outcome && outcome.status === 'confirmed'
          ? 'You are not signed in any more, so this page stopped following the emails. They are sent all the same.'
          : 'You are not signed in any more, so this page stopped following the ' +
            'onboarding. It goes on, and the email is sent to you when it is complete.';
        return;
      }
      if (status && FINAL.has(status.status)) {
        if (outcome && outcome.onboarding_id === status.onboarding_id) showMails(status);
        else showOutcome(status);
        // Confirmed with an email still to be sent: asked again until each is settled,
        // while the page is in view.
        if (!mailsPending(status)) return;
        if (!mailsSince) mailsSince = Date.now();
        if (Date.now() - mailsSince > MAIL_POLL_FOR_MS) {
          $('result-progress').textContent = 'This page stopped following the emails; they are still being ' +
            'sent. Their outcome shows here when you open the onboarding again.';
          return;
        }
        do await delay(MAIL_POLL_MS); while (document.hidden && mine === following);
        continue;
      }
      if (status) {
        $('result-progress').textContent = STATUS_TEXT[status.status] || `Status: ${status.status}.`;
      } else if (!res || res.status !== 404) {
        // 404: intake has not recorded it yet, and the long poll has waited already.
        $('result-progress').textContent = 'Waiting for the server to answer.';
        await delay(2000);
      }
    }
  }

  function table(id, head, rows) {
    return h('table', { id },
      h('thead', {}, h('tr', {}, ...head.map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', { text: c === null ? '' : String(c) }))))));
  }

  const STAGE_TEXT = {
    accepted: 'Accepted', rejected: 'Refused', 'users-allocated': 'Users allocated',
    'appliances-provisioned': 'Appliances provisioned', 'shipping-completed': 'Shipping arranged',
    'shipment-dispatched': 'Shipment dispatched', confirmed: 'Confirmed', failed: 'Could not be completed',
  };

  /* The stages in the order the status answer gives them: the flow's, with when each
   * happened at its own stage. */
  function stageList(stages) {
    if (!stages || !stages.length) return [];
    return [h('h3', { text: 'Progress' }), h('ol', { id: 'result-stages' }, ...stages.map((st) =>
      h('li', { 'data-stage': st.stage, text: `${STAGE_TEXT[st.stage] || st.stage}: ` +
                                             `${new Date(st.happened_at || st.at).toLocaleString()}` })))];
  }

  const MAIL_KINDS = { confirmation: 'Confirmation to you', invitation: 'MDR Portal invitation' };
  const MAIL_STATES = { pending: 'will be sent', sent: 'sent', failed: 'could not be delivered' };

  function mailsPending(s) {
    return s.status === 'confirmed' && (s.mails || []).some((m) => m.status === 'pending');
  }

  function mailItems(mails) {
    return mails.map((m) => h('li', { 'data-kind': m.kind, 'data-status': m.status,
      text: `${MAIL_KINDS[m.kind] || m.kind}: ${m.recipient}, ${MAIL_STATES[m.status] || m.status}` }));
  }

  /* The confirmation page shown already: only its emails change, and only a change is
   * written (the list is a live region: each write is read out). */
  function showMails(s) {
    const list = $('result-mails');
    const was = (outcome.mails || []).map((m) => m.status).join();
    $('result-progress').textContent = '';
    if (list && (s.mails || []).map((m) => m.status).join() !== was) list.replaceChildren(...mailItems(s.mails || []));
    outcome = s;
  }

  function showOutcome(s) {
    outcome = s;
    const result = $('result');
    result.dataset.status = s.status;
    $('result-progress').textContent = '';
    const body = [];
    if (s.status === 'confirmed') {
      $('result-title').textContent = 'Customer onboarded';
      $('result-intro').textContent = `Your new customer, ${s.customer.legal_name}, and their users are confirmed. ` +
        'The emails below go out now; each says here when it is sent.';
      const dl = h('dl', { class: 'summary', id: 'result-customer' });
      entry(dl, 'Customer id', h('span', { id: 'result-customer-id', text: s.customer.customer_id }));
      entry(dl, 'Legal name', s.customer.legal_name);
      entry(dl, 'License', LICENSE_NAMES[s.license] || s.license);
      entry(dl, 'Web site', s.customer.web_site);
      entry(dl, 'Sub-partner', s.customer.sub_partner_id);
      entry(dl, 'MDR Portal administrator', s.customer.portal_admin_email);
      body.push(h('h3', { text: 'Customer' }), dl);
      body.push(h('h3', { text: 'Users' }),
        table('result-users', ['Product', 'Users'], s.users.map((u) => [PRODUCT_NAMES[u.product] || u.product, u.users])));
      if (s.appliances.length)
        body.push(h('h3', { text: 'Appliances' }), table('result-appliances', ['Appliance', 'Model', 'Serial or virtual appliance'],
          s.appliances.map((a) => [a.role === 'PRIMARY' ? 'Primary' : 'Sensor', a.sku,
            a.serial || `${a.virtual_id} in ${a.hosting_region}`])));
      if (s.shipments.length)
        body.push(h('h3', { text: 'Shipments' }), h('ul', { id: 'result-shipments' }, ...s.shipments.map((sh) =>
          h('li', { text: `To ${addressText(sh.address)}: ${sh.items.map((i) => `${i.sku} ${i.serial}`).join(', ')}. ` +
                          (sh.tracking_number ? `Shipped by ${sh.carrier}, tracking ${sh.tracking_number}.`
                            : 'The tracking number will be emailed to you when it ships.') }))));
      body.push(h('h3', { text: 'Emails' }), h('ul', { id: 'result-mails', 'aria-live': 'polite' },
        ...mailItems(s.mails)));
      body.push(...advice(s.warnings));
      $('correct-button').hidden = true;
    } else {
      const refused = s.status === 'rejected';
      $('result-title').textContent = refused ? 'The onboarding request was refused'
        : 'The onboarding could not be completed';
      $('result-intro').textContent = refused
        ? 'Nothing was allocated. Correct the request and submit it again.'
        : 'Everything held for it was released: the users went back to your license and no appliance is ' +
          'reserved. An email with the reasons was sent to you. Correct the request and submit it again.';
      body.push(h('h3', { text: 'Reasons' }), h('ul', { id: 'result-reasons' }, ...(s.reasons || []).map((r) =>
        h('li', { 'data-code': r.code, text: r.message }))));
      $('correct-button').hidden = false;
    }
    body.push(...stageList(s.stages));
    $('result-body').replaceChildren(...body);
    $('result-title').focus();
    announce($('result-title').textContent);
  }

  /* ---- wiring ----------------------------------------------------------------- */

  form.addEventListener('input', () => {
    touched = true;
    refresh();
  });
  form.addEventListener('change', (e) => {
    touched = true;
    refresh();
    if (e.target.name === 'breach')
      announce(e.target.value === 'yes'
        ? 'Contact incident response first: a customer experiencing a breach or incident cannot be onboarded here.'
        : 'The rest of the form is shown below.');
    // Choosing custom addresses starts with one address to fill in.
    if (e.target.id === 'ship-custom' && !addressBlocks().length) addAddress(false);
  });
  $('add-sensor').addEventListener('click', addSensor);
  $('add-address').addEventListener('click', () => addAddress(true));

  $('review-button').addEventListener('click', () => {
    const { request, problems } = readRequest();
    if (problems.length) {
      showReasons(problems);
      return;
    }
    clearErrors();
    renderSummary(request);
    $('confirmed').checked = false;
    setMode('review');
    $('review-title').focus();
  });
  $('edit-button').addEventListener('click', () => {
    clearErrors();
    setMode('edit');
    $('review-button').focus();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    // Enter in a field while editing sends nothing: the review comes first.
    if (!$('review').hidden) submit();
  });
  $('correct-button').addEventListener('click', () => {
    following++; // stop following the old onboarding
    setMode('edit');
    showReasons(outcome && outcome.reasons ? outcome.reasons : []);
  });
  $('new-button').addEventListener('click', () => {
    following++;
    form.reset();
    touched = false;
    $('sensors').replaceChildren();
    $('addresses').replaceChildren();
    clearErrors();
    refresh();
    setMode('edit');
    $('page-title').focus();
  });

  refresh();
  loadOptions();
})();
