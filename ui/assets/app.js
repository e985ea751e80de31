// The management page: it reads and changes credentials through the
// proxycast admin API and nothing else. Sections and their forms are built
// once per provider and kept; a refresh rewrites only the tables, so what
// the user is typing survives it.
import { t, lang, setLang, stateWord, translate } from './i18n.js';

const API = '/proxycast/';
const REFRESH_MS = 3000;

const view = {
  providers: [],
  creds: [],
  clients: [],
  sort: { key: 'id', dir: 1 },
  filter: '',
  sections: new Map(), // provider name → section element
  error: '',
  loaded: false, // the first answer came
};

// api sends one admin API request; a failure throws an Error carrying the
// API's message and the field it names.
async function api(method, path, body) {
  const init = { method, headers: {}, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(API + path, init);
  } catch (e) {
    throw Object.assign(new Error(e.message || String(e)), { status: 0 });
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text.trim() }; }
  }
  if (!resp.ok) {
    const msg = (data && (data.error || data.message)) || `${resp.status} ${resp.statusText}`;
    throw Object.assign(new Error(msg), { status: resp.status, field: data && data.field });
  }
  return data;
}

function enc(s) { return encodeURIComponent(s); }

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---- messages ------------------------------------------------------------

function errorText(err) {
  return err.field ? t('fieldPrefix', err.field, err.message) : err.message;
}

function say(text, ok = true) {
  const m = document.getElementById('message');
  m.textContent = text;
  m.className = ok ? 'ok' : 'error';
  m.hidden = false;
}

// formSay shows the outcome of a form's action under it, and marks the
// input the API named.
function formSay(form, text, ok, field) {
  const p = form.querySelector('.form-message');
  p.textContent = text;
  p.className = 'form-message ' + (ok ? 'ok' : 'error');
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  if (!ok && field) {
    const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
    if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
  }
}

// ---- formatting ----------------------------------------------------------

function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return d.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { dateStyle: 'short', timeStyle: 'short' });
}

function fmtLeft(ms) {
  if (ms <= 0) return t('now');
  let s = Math.ceil(ms / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}

function fmtNum(n) { return (n || 0).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-US'); }

function tokensOf(c) {
  const k = c.tokens || {};
  return (k.prompt || 0) + (k.completion || 0);
}

function stateClass(state) {
  switch (state) {
    case 'active': return 'good';
    case 'cooling': case 'refreshing': return 'warn';
    case 'disabled': return 'off';
    default: return 'bad';
  }
}

// ---- sorting and filtering -------------------------------------------------

function sortValue(c, key) {
  switch (key) {
    case 'tokens': return tokensOf(c);
    case 'requests': case 'failures': case 'priority': return c[key] || 0;
    case 'cooling_until': case 'expires_at': case 'next_renewal':
      return c[key] ? Date.parse(c[key]) : Number.MAX_SAFE_INTEGER;
    default: return String(c[key] ?? '').toLowerCase();
  }
}

function sorted(creds) {
  const { key, dir } = view.sort;
  return [...creds].sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    if (x < y) return -dir;
    if (x > y) return dir;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
}

function matches(c, words) {
  if (words.length === 0) return true;
  const hay = [c.id, c.auth_type, c.state, stateWord(c.state), c.account, c.last_error,
    c.cooling_reason, c.proxy_url, c.source, String(c.priority ?? '')].join(' ').toLowerCase();
  return words.every((w) => hay.includes(w));
}

// ---- the tables ------------------------------------------------------------

function actionButton(action, label, c, cls = 'small secondary') {
  return el('button', { type: 'button', class: cls, dataset: { action, provider: c.provider, id: c.id } }, label);
}

function row(c) {
  const state = el('td', {},
    el('span', { class: 'badge ' + stateClass(c.state), title: c.state }, stateWord(c.state)));
  if (c.runtime_change) state.append(el('div', { class: 'note' }, t('runtimeChange', c.runtime_change)));

  const cooldown = el('td', { class: 'cooldown' });
  const until = c.cooling_until ? Date.parse(c.cooling_until) : 0;
  if (until > Date.now()) {
    cooldown.append(el('span', { class: 'countdown', dataset: { until: String(until) } }, fmtLeft(until - Date.now())));
    if (c.cooling_reason) cooldown.append(el('div', { class: 'note' }, c.cooling_reason));
  } else {
    cooldown.append('—');
  }
  for (const [model, at] of Object.entries(c.model_cooldowns || {})) {
    const u = Date.parse(at);
    if (u > Date.now()) {
      cooldown.append(el('div', { class: 'note' }, model + ' ',
        el('span', { class: 'countdown', dataset: { until: String(u) } }, fmtLeft(u - Date.now()))));
    }
  }

  const k = c.tokens || {};
  const tokens = el('td', { class: 'num', title: usageTitle(k, k.estimated, c.usage) }, fmtNum(tokensOf(c)));
  if (k.estimated) tokens.append(el('div', { class: 'note' }, t('estimated', fmtNum(k.estimated))));

  const actions = el('td', { class: 'actions' });
  if (c.state !== 'invalid') {
    actions.append(c.disabled ? actionButton('enable', t('enable'), c) : actionButton('disable', t('disable'), c));
    actions.append(actionButton('edit', t('edit'), c));
    if (c.auth_type !== 'api_key') actions.append(actionButton('refresh', t('refresh'), c));
  }
  actions.append(actionButton('delete', t('delete'), c, 'small danger'));

  return el('tr', { dataset: { id: c.id, state: c.state } },
    el('td', { class: 'id' }, c.id,
      el('div', { class: 'note' }, c.source === 'runtime' ? t('fromRuntime') : t('fromConfig'))),
    el('td', {}, c.auth_type),
    state,
    el('td', { class: 'num' }, c.priority ? String(c.priority) : '—'),
    cooldown,
    el('td', {}, c.account || '—'),
    el('td', {}, fmtTime(c.expires_at)),
    el('td', {}, fmtTime(c.next_renewal)),
    el('td', { class: 'num' }, fmtNum(c.requests)),
    el('td', { class: 'num' + (c.failures ? ' bad-text' : '') }, fmtNum(c.failures)),
    tokens,
    el('td', { class: c.last_error ? 'error-cell' : '' }, c.last_error || '—'),
    actions);
}

function renderTable(section, name) {
  const all = view.creds.filter((c) => c.provider === name);
  const words = view.filter.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = sorted(all.filter((c) => matches(c, words)));
  const body = section.querySelector('tbody');
  const rows = keptRows(section, shown, (c) => c.id, row);
  if (rows.length === 0) {
    rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 13 }, all.length ? t('noMatch') : t('noCredentials'))));
  }
  placeRows(body, rows);
  section.querySelector('.count').textContent = words.length ? t('shown', shown.length, all.length) : t('credentials', all.length);
  for (const th of section.querySelectorAll('th[data-sort]')) {
    const on = th.dataset.sort === view.sort.key;
    th.setAttribute('aria-sort', on ? (view.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
}

// usageTitle is the tooltip of a tokens cell: the kinds, what of it was
// estimated, and the counts by model.
function usageTitle(k, estimated, byModel) {
  const lines = [t('tokensTitle', fmtNum(k.prompt), fmtNum(k.completion), fmtNum(k.cached), fmtNum(k.reasoning))];
  if (estimated) lines.push(t('estimatedTitle', fmtNum(estimated)));
  for (const [m, u] of Object.entries(byModel || {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    lines.push(t('byModelTitle', m, fmtNum(u.requests), fmtNum((u.prompt || 0) + (u.completion || 0))));
  }
  return lines.join('\n');
}

function clientRow(c) {
  const total = c.usage_total || {};
  const byModel = el('td', { class: 'note' });
  for (const [m, u] of Object.entries(c.usage || {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    byModel.append(el('div', {}, `${m}: ${fmtNum(u.requests)} · ${fmtNum((u.prompt || 0) + (u.completion || 0))}`));
  }
  const budget = el('td', {}, c.token_budget || '—');
  if (c.budget) budget.append(el('div', { class: 'note' }, t('spent', fmtNum(c.budget.spent), fmtTime(c.budget.renews))));
  const tokens = el('td', { class: 'num', title: usageTitle(total, total.estimated_tokens, c.usage) },
    fmtNum((total.prompt || 0) + (total.completion || 0)));
  if (total.estimated_tokens) tokens.append(el('div', { class: 'note' }, t('estimated', fmtNum(total.estimated_tokens))));
  const name = el('td', { class: 'id' }, c.name,
    el('div', { class: 'note' }, (c.keys === 1 ? t('oneKey') : t('keysCount', c.keys)) + ' · ' + (c.source === 'runtime' ? t('fromRuntime') : t('fromConfig'))));
  if (c.left_out) name.append(el('div', { class: 'note bad-text' }, t('leftOut', c.left_out)));
  if (c.runtime_change) name.append(el('div', { class: 'note' }, t('runtimeChange', c.runtime_change)));
  const actions = el('td', { class: 'actions' });
  if (!c.left_out) actions.append(el('button', { type: 'button', class: 'small secondary', dataset: { action: 'edit', client: c.name } }, t('edit')));
  actions.append(el('button', { type: 'button', class: 'small danger', dataset: { action: 'delete', client: c.name } }, t('delete')));
  return el('tr', { dataset: { client: c.name } },
    name,
    el('td', {}, (c.models || []).join(' ') || t('allModels')),
    el('td', {}, c.rate_limit || '—'),
    budget,
    el('td', { class: c.expired ? 'bad-text' : '' }, c.expires ? fmtTime(c.expires) + (c.expired ? ` (${t('expired')})` : '') : '—'),
    el('td', { class: 'num' }, fmtNum(total.requests)),
    tokens,
    byModel,
    actions);
}

// renderClients shows the named clients and what they used; no key is
// ever in the answer, only how many. Like the credentials' tables, it
// touches only the rows that changed.
function renderClients() {
  const section = document.getElementById('clients');
  section.hidden = false;
  section.querySelector('.count').textContent = t('nClients', view.clients.length);
  const rows = keptRows(section, view.clients, (c) => c.name, clientRow);
  if (rows.length === 0) rows.push(el('tr', { class: 'empty' }, el('td', { colSpan: 9 }, t('noClients'))));
  placeRows(section.querySelector('tbody'), rows);
}

// keptRows makes the rows of items, keeping the row of an item that has
// not changed since the last time, node and all: a click on it while the
// page refreshes still lands.
function keptRows(holder, items, keyOf, make) {
  const cache = holder.rows || new Map();
  const next = new Map();
  const rows = items.map((c) => {
    const sig = lang + JSON.stringify(c);
    const kept = cache.get(keyOf(c));
    const tr = kept && kept.sig === sig ? kept.tr : make(c);
    next.set(keyOf(c), { sig, tr });
    return tr;
  });
  holder.rows = next;
  return rows;
}

// placeRows puts rows in body, touching only what changed: an unchanged
// row is never taken out and put back, so neither a click nor a selection
// on it is lost. Stale rows go first, so that the rows after them need
// not move.
function placeRows(body, rows) {
  const keep = new Set(rows);
  for (const child of [...body.children]) if (!keep.has(child)) child.remove();
  rows.forEach((r, i) => {
    if (body.children[i] !== r) body.insertBefore(r, body.children[i] || null);
  });
}

function render() {
  renderClients();
  const main = document.getElementById('providers');
  main.setAttribute('aria-busy', 'false');
  document.getElementById('loading')?.remove();
  const names = new Set(view.providers.map((p) => p.name));
  for (const [name, section] of view.sections) {
    if (!names.has(name)) { section.remove(); view.sections.delete(name); }
  }
  for (const p of view.providers) {
    let section = view.sections.get(p.name);
    if (!section) {
      section = buildSection(p);
      view.sections.set(p.name, section);
      main.append(section);
    }
    renderTable(section, p.name);
  }
  let none = document.getElementById('no-providers');
  if (view.providers.length === 0 && !none) {
    main.append(el('p', { id: 'no-providers', class: 'muted' }, t('noProviders')));
  } else if (view.providers.length > 0 && none) {
    none.remove();
  }
}

// ---- a provider's section and its forms ----------------------------------------

const tabWords = { api_key: 'tabApiKey', cookie: 'tabCookie', oauth: 'tabOAuth' };

function buildSection(p) {
  const section = document.getElementById('provider-tpl').content.firstElementChild.cloneNode(true);
  section.dataset.provider = p.name;
  section.querySelector('.name').textContent = p.name;
  section.querySelector('.type').textContent = p.type;
  translate(section);
  const tabs = section.querySelector('.tabs');
  // OAuth first where there is a login, as on the product page.
  const kinds = ['oauth', 'cookie', 'api_key'].filter((k) => p.auth_types.includes(k) && (k !== 'oauth' || p.login));
  for (const kind of kinds) {
    const tab = el('button', { type: 'button', role: 'tab', class: 'tab', dataset: { kind, t: tabWords[kind] } }, t(tabWords[kind]));
    tab.addEventListener('click', () => showTab(section, kind));
    tabs.append(tab);
  }
  for (const form of section.querySelectorAll('.add-form')) {
    if (!kinds.includes(form.dataset.kind)) { form.remove(); continue; }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); submitAdd(p.name, form); });
  }
  const oauth = section.querySelector('.add-form[data-kind="oauth"]');
  if (oauth) wireLogin(p.name, oauth);
  if (kinds.length) showTab(section, kinds[0]);
  for (const th of section.querySelectorAll('th[data-sort]')) {
    th.tabIndex = 0;
    const sortBy = () => {
      view.sort = { key: th.dataset.sort, dir: view.sort.key === th.dataset.sort ? -view.sort.dir : 1 };
      for (const [name, s] of view.sections) renderTable(s, name);
    };
    th.addEventListener('click', sortBy);
    th.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') sortBy(); });
  }
  section.querySelector('tbody').addEventListener('click', onRowAction);
  return section;
}

function showTab(section, kind) {
  for (const tab of section.querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(tab.dataset.kind === kind));
  for (const form of section.querySelectorAll('.add-form')) form.hidden = form.dataset.kind !== kind;
}

// common reads the fields every new credential may have.
function common(form) {
  const f = form.elements;
  const body = { id: f.id.value.trim() };
  if (f.priority.value !== '') body.priority = Number(f.priority.value);
  if (f.proxy_url.value.trim() !== '') body.proxy_url = f.proxy_url.value.trim();
  return body;
}

async function submitAdd(prov, form) {
  const kind = form.dataset.kind;
  if (kind === 'oauth') return startLogin(prov, form);
  const body = common(form);
  body.auth_type = kind;
  if (kind === 'api_key') body.api_key = form.elements.api_key.value.trim();
  if (kind === 'cookie') body.cookies = form.elements.cookies.value.trim();
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    await api('POST', `credentials/${enc(prov)}`, body);
    form.reset(); // the secret leaves the page
    formSay(form, t(kind === 'cookie' ? 'cookieSaved' : 'added', body.id), true);
    await load();
  } catch (err) {
    formSay(form, errorText(err), false, err.field);
  } finally {
    button.disabled = false;
  }
}

// ---- OAuth login -------------------------------------------------------------------

function wireLogin(prov, form) {
  const box = form.querySelector('.login');
  box.querySelector('.login-cancel').addEventListener('click', async () => {
    const st = box.dataset.state;
    if (!st) return;
    try {
      await api('DELETE', `oauth/${enc(prov)}/${enc(st)}`);
      showLogin(form, 'failed');
      formSay(form, t('loginCanceled'), true);
    } catch (err) {
      formSay(form, errorText(err), false, err.field);
    }
  });
  const paste = async () => {
    const st = box.dataset.state;
    const input = form.elements.callback;
    if (!st) return;
    try {
      const out = await api('POST', `oauth/${enc(prov)}/${enc(st)}/callback`, { url: input.value.trim() });
      input.value = ''; // the code is spent either way
      settleLogin(prov, form, out);
    } catch (err) {
      formSay(form, errorText(err), false, err.field);
    }
  };
  box.querySelector('.login-paste').addEventListener('click', paste);
  form.elements.callback.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); paste(); }
  });
}

function showLogin(form, state) {
  const box = form.querySelector('.login');
  box.hidden = false;
  const s = box.querySelector('.login-state');
  s.textContent = t(state === 'done' ? 'loginDone' : state === 'failed' ? 'loginFailed' : 'loginPending');
  s.className = 'login-state ' + (state === 'done' ? 'good-text' : state === 'failed' ? 'bad-text' : '');
  box.dataset.status = state;
  const pending = state === 'pending';
  box.querySelector('.login-cancel').hidden = !pending;
  box.querySelector('.login-paste').disabled = !pending;
  form.elements.callback.disabled = !pending;
}

async function startLogin(prov, form) {
  const body = common(form);
  if (form.elements.port.value !== '') body.port = Number(form.elements.port.value);
  // The tab is opened now, while the click still counts as the user's:
  // a tab opened after the answer would meet the popup blocker.
  const tab = window.open('', '_blank');
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const out = await api('POST', `oauth/${enc(prov)}`, body);
    const box = form.querySelector('.login');
    box.dataset.state = out.state;
    const link = box.querySelector('.login-link');
    link.href = out.url;
    showLogin(form, 'pending');
    if (tab) {
      tab.opener = null;
      tab.location.href = out.url;
      formSay(form, t('loginOpened'), true);
    } else {
      formSay(form, t('loginBlocked'), true);
    }
    followLogin(prov, form, out.state);
  } catch (err) {
    if (tab) tab.close();
    formSay(form, errorText(err), false, err.field);
  } finally {
    button.disabled = false;
  }
}

async function followLogin(prov, form, st) {
  const box = form.querySelector('.login');
  while (box.dataset.state === st && box.dataset.status === 'pending') {
    await new Promise((r) => setTimeout(r, 1000));
    if (box.dataset.state !== st || box.dataset.status !== 'pending') return;
    try {
      const out = await api('GET', `oauth/${enc(prov)}/${enc(st)}`);
      if (out.state !== 'pending') settleLogin(prov, form, out);
    } catch (err) {
      if (err.status === 404) { showLogin(form, 'failed'); formSay(form, errorText(err), false); return; }
    }
  }
}

function settleLogin(prov, form, out) {
  if (out.state === 'pending') return;
  showLogin(form, out.state);
  if (out.state === 'done') {
    formSay(form, t('loginDoneMsg', out.account ? ` (${out.account})` : '', out.credential), true);
    form.elements.id.value = '';
    load();
  } else {
    formSay(form, t('loginFailedMsg', out.error || ''), false);
  }
}

// ---- row actions ---------------------------------------------------------------------

function credential(prov, id) {
  return view.creds.find((c) => c.provider === prov && c.id === id);
}

async function onRowAction(ev) {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const { action, provider: prov, id } = b.dataset;
  const path = `credentials/${enc(prov)}/${enc(id)}`;
  try {
    switch (action) {
      case 'disable':
      case 'enable':
        b.disabled = true;
        await api('PATCH', path, { disabled: action === 'disable' });
        say(t(action === 'disable' ? 'disabled' : 'enabled', id));
        break;
      case 'refresh':
        b.disabled = true;
        await api('POST', path + '/refresh');
        say(t('refreshed', id));
        break;
      case 'delete':
        if (!(await confirmDelete(t('confirmDelete', id, prov)))) return;
        await api('DELETE', path);
        say(t('deleted', id));
        break;
      case 'edit':
        openEdit(credential(prov, id));
        return;
    }
  } catch (err) {
    say(`${id}: ${errorText(err)}`, false);
  } finally {
    b.disabled = false;
  }
  await load();
}

function confirmDelete(text) {
  const d = document.getElementById('confirm');
  d.querySelector('.confirm-text').textContent = text;
  d.showModal();
  // The buttons answer, not the dialog's close event, which a browser
  // may put off in a tab in the background.
  return new Promise((resolve) => {
    const answer = (ok) => (ev) => {
      ev.preventDefault();
      d.close();
      resolve(ok);
    };
    d.querySelector('button[value="ok"]').onclick = answer(true);
    d.querySelector('button[value="cancel"]').onclick = answer(false);
    d.oncancel = () => resolve(false);
  });
}

let editing = null;

function openEdit(c) {
  if (!c) return;
  editing = c;
  const d = document.getElementById('edit');
  const f = d.querySelector('form');
  f.querySelector('.edit-id').textContent = `${c.provider} / ${c.id}`;
  f.elements.priority.value = c.priority || '';
  // A proxy_url is shown with its password masked: only a changed one
  // is sent back.
  f.elements.proxy_url.value = c.proxy_url || '';
  f.elements.proxy_url.dataset.shown = c.proxy_url || '';
  f.elements.cookies.value = '';
  f.querySelector('.cookie-only').hidden = c.auth_type !== 'cookie';
  formSay(f, '', true);
  d.showModal();
}

async function saveEdit(ev) {
  const f = ev.target;
  if (ev.submitter && ev.submitter.value !== 'save') return; // cancel closes
  ev.preventDefault();
  const c = editing;
  const patch = {};
  const prio = f.elements.priority.value === '' ? 0 : Number(f.elements.priority.value);
  if (prio !== (c.priority || 0)) patch.priority = prio;
  const proxy = f.elements.proxy_url.value.trim();
  if (proxy !== f.elements.proxy_url.dataset.shown) patch.proxy_url = proxy;
  if (f.elements.cookies.value.trim() !== '') patch.cookies = f.elements.cookies.value.trim();
  const save = f.querySelector('.save');
  save.disabled = true;
  try {
    if (Object.keys(patch).length) await api('PATCH', `credentials/${enc(c.provider)}/${enc(c.id)}`, patch);
    f.elements.cookies.value = '';
    document.getElementById('edit').close();
    say(t('saved', c.id));
    await load();
  } catch (err) {
    formSay(f, errorText(err), false, err.field);
  } finally {
    save.disabled = false;
  }
}

// ---- named clients ------------------------------------------------------------------

// newKey makes a key in the browser: 24 random bytes, in hex.
function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return 'sk-pc-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// wireKey gives a key input its Generate and Copy buttons. A generated
// key is shown, to be copied: the form is not sent until it has been (the
// gateway keeps only its digest, so it could not be shown again). A typed
// one stays hidden.
function wireKey(form) {
  const input = form.elements.key;
  const copy = form.querySelector('.copy');
  form.querySelector('.generate').addEventListener('click', () => {
    input.value = newKey();
    input.type = 'text';
    input.dataset.generated = '1';
    input.dataset.copied = '';
    copy.hidden = false;
    form.querySelector('.key-note').hidden = false;
  });
  copy.addEventListener('click', async () => {
    input.dataset.copied = '1';
    try {
      await navigator.clipboard.writeText(input.value);
      formSay(form, t('copied'), true);
    } catch {
      // Without clipboard access the key is selected, for Ctrl+C.
      input.focus();
      input.select();
      formSay(form, t('copySelected'), true);
    }
  });
  input.addEventListener('input', () => {
    input.dataset.generated = '';
    if (input.type === 'text' && input.value === '') resetKey(form);
  });
}

// keyUncopied refuses to send a generated key that was not copied.
function keyUncopied(form) {
  const input = form.elements.key;
  if (input.dataset.generated !== '1' || input.dataset.copied === '1') return false;
  formSay(form, t('copyFirst'), false, 'key');
  return true;
}

// resetKey takes the key out of the form.
function resetKey(form) {
  const input = form.elements.key;
  input.value = '';
  input.type = 'password';
  input.dataset.generated = '';
  input.dataset.copied = '';
  form.querySelector('.copy').hidden = true;
  form.querySelector('.key-note').hidden = true;
}

function splitWords(s) { return s.trim().split(/\s+/).filter(Boolean); }

async function submitClient(form) {
  if (keyUncopied(form)) return;
  const f = form.elements;
  const body = { name: f.name.value.trim(), keys: [f.key.value.trim()] };
  if (splitWords(f.models.value).length) body.models = splitWords(f.models.value);
  for (const k of ['rate_limit', 'token_budget', 'expires']) if (f[k].value.trim()) body[k] = f[k].value.trim();
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    await api('POST', 'clients', body);
    form.reset();
    resetKey(form);
    formSay(form, t('clientAdded', body.name), true);
    await load();
  } catch (err) {
    formSay(form, errorText(err), false, err.field === 'keys' ? 'key' : err.field);
  } finally {
    button.disabled = false;
  }
}

let editingClient = null;

function openClientEdit(c) {
  if (!c) return;
  editingClient = c;
  const d = document.getElementById('edit-client');
  const f = d.querySelector('form');
  f.querySelector('.edit-id').textContent = c.name;
  f.elements.models.value = (c.models || []).join(' ');
  f.elements.rate_limit.value = c.rate_limit || '';
  f.elements.token_budget.value = c.token_budget || '';
  f.elements.expires.value = c.expires ? c.expires.replace(/T00:00:00Z$/, '') : '';
  resetKey(f);
  formSay(f, '', true);
  d.showModal();
}

async function saveClientEdit(ev) {
  const f = ev.target;
  if (ev.submitter && ev.submitter.value !== 'save') { resetKey(f); return; }
  ev.preventDefault();
  if (keyUncopied(f)) return;
  const c = editingClient;
  const patch = {};
  const models = splitWords(f.elements.models.value);
  if (models.join(' ') !== (c.models || []).join(' ')) patch.models = models;
  const shown = { rate_limit: c.rate_limit || '', token_budget: c.token_budget || '', expires: c.expires ? c.expires.replace(/T00:00:00Z$/, '') : '' };
  for (const k of Object.keys(shown)) {
    const v = f.elements[k].value.trim();
    if (v !== shown[k]) patch[k] = v;
  }
  if (f.elements.key.value.trim() !== '') patch.keys = [f.elements.key.value.trim()];
  const save = f.querySelector('.save');
  save.disabled = true;
  try {
    if (Object.keys(patch).length) await api('PATCH', `clients/${enc(c.name)}`, patch);
    resetKey(f);
    document.getElementById('edit-client').close();
    say(t('clientSaved', c.name));
    await load();
  } catch (err) {
    formSay(f, errorText(err), false, err.field === 'keys' ? 'key' : err.field);
  } finally {
    save.disabled = false;
  }
}

async function onClientAction(ev) {
  const b = ev.target.closest('button[data-action]');
  if (!b) return;
  const { action, client: name } = b.dataset;
  if (action === 'edit') {
    openClientEdit(view.clients.find((c) => c.name === name));
    return;
  }
  try {
    if (!(await confirmDelete(t('confirmDeleteClient', name)))) return;
    b.disabled = true;
    await api('DELETE', `clients/${enc(name)}`);
    say(t('clientDeleted', name));
  } catch (err) {
    say(`${name}: ${errorText(err)}`, false);
  } finally {
    b.disabled = false;
  }
  await load();
}

function wireClients() {
  const section = document.getElementById('clients');
  const form = section.querySelector('.client-form');
  wireKey(form);
  form.addEventListener('submit', (ev) => { ev.preventDefault(); submitClient(form); });
  section.querySelector('tbody').addEventListener('click', onClientAction);
  const edit = document.querySelector('#edit-client form');
  wireKey(edit);
  edit.addEventListener('submit', saveClientEdit);
}

// ---- refreshing ------------------------------------------------------------------------

let loading = null;

async function load() {
  if (loading) return loading;
  loading = (async () => {
    try {
      const [providers, creds, clients] = await Promise.all([api('GET', 'providers'), api('GET', 'credentials'), api('GET', 'clients')]);
      view.providers = providers;
      view.creds = creds;
      view.clients = clients;
      view.loaded = true;
      if (view.error) {
        view.error = '';
        document.getElementById('message').hidden = true;
      }
      document.getElementById('updated').textContent = t('updated', new Date().toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB'));
      render();
    } catch (err) {
      view.error = err.message;
      say(t('unreachable', err.message), false);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

function tick() {
  let expired = false;
  for (const c of document.querySelectorAll('.countdown')) {
    const left = Number(c.dataset.until) - Date.now();
    c.textContent = fmtLeft(left);
    if (left <= 0) expired = true;
  }
  if (expired) load();
}

function retranslate() {
  translate(document);
  document.getElementById('lang').textContent = t('switchTo');
  for (const section of view.sections.values()) {
    for (const tab of section.querySelectorAll('.tab')) tab.textContent = t(tab.dataset.t);
    const box = section.querySelector('.login');
    if (box && box.dataset.status) showLogin(box.closest('form'), box.dataset.status);
  }
  if (view.loaded) render();
}

function boot() {
  setLang(lang);
  retranslate();
  document.getElementById('lang').addEventListener('click', () => {
    setLang(lang === 'zh' ? 'en' : 'zh');
    retranslate();
  });
  document.getElementById('filter').addEventListener('input', (ev) => {
    view.filter = ev.target.value;
    for (const [name, s] of view.sections) renderTable(s, name);
  });
  document.querySelector('#edit form').addEventListener('submit', saveEdit);
  wireClients();
  load();
  setInterval(load, REFRESH_MS);
  setInterval(tick, 1000);
}

boot();
