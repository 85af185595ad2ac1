// tollgate dashboard. Hand-written, no dependencies. Every figure comes
// from the admin JSON API with the admin key the user typed, kept in this
// tab's sessionStorage. Everything is rendered with textContent and DOM
// attributes, never innerHTML: key names, audit targets and actors are
// user input.
'use strict';

const KEY = 'tollgate.adminKey';
const SVGNS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#3b4fd8', '#0ea5e9', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#94a3b8'];
const SAVED_COLORS = { exact: '#10b981', semantic: '#0ea5e9', downgrade: '#8b5cf6' };
const TOP = 6; // series drawn on their own in a chart; the rest are "other"

const $ = (id) => document.getElementById(id);

// el builds an element; children are nodes or strings (text nodes).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

// ---- formatting ----

function usd(v) {
  const n = Number(v);
  if (!isFinite(n)) return '—';
  const a = Math.abs(n);
  let digits = 2;
  if (a > 0 && a < 0.01) digits = 6;
  else if (a > 0 && a < 1) digits = 4;
  return '$' + n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function usdAxis(n) {
  if (n === 0) return '$0';
  if (n >= 1000) return '$' + (n / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 }) + 'k';
  if (n >= 1) return '$' + n.toLocaleString('en-US', { maximumFractionDigits: 2 });
  return '$' + Number(n.toPrecision(2));
}

const count = (n) => Number(n || 0).toLocaleString('en-US');
const pct = (x) => (isFinite(x) ? (x * 100).toLocaleString('en-US', { maximumFractionDigits: 1 }) + '%' : '—');

let timeZone; // the ledger's, when the browser knows it
function fmtTime(iso, opts) {
  if (!iso) return '—';
  const d = new Date(iso);
  const o = Object.assign({ year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false }, opts || {});
  try {
    return new Intl.DateTimeFormat('en-GB', Object.assign({ timeZone }, o)).format(d);
  } catch (e) {
    return new Intl.DateTimeFormat('en-GB', o).format(d);
  }
}

function fmtDuration(ms) {
  const m = Math.round(Math.abs(ms) / 60000);
  if (m < 60) return m + ' min';
  const h = Math.round(m / 6) / 10;
  if (h < 48) return h + ' h';
  return Math.round(h / 24) + ' days';
}

// Date-only arithmetic on YYYY-MM-DD strings, in UTC so no zone shifts it.
function addDays(day, n) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

function days(from, to) {
  const out = [];
  for (let d = from; d <= to; d = addDays(d, 1)) out.push(d);
  return out;
}

// ---- the API ----

class AuthError extends Error {}

async function api(path) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new AuthError('no admin key');
  const resp = await fetch(path, { headers: { Authorization: 'Bearer ' + key }, cache: 'no-store', credentials: 'omit' });
  if (resp.status === 401) {
    const body = await resp.json().catch(() => ({}));
    throw new AuthError((body.error && body.error.message) || 'the admin key was refused');
  }
  if (resp.status === 404) {
    const body = await resp.json().catch(() => ({}));
    return { disabled: true, error: body.error };
  }
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new Error(path.split('?')[0] + ': ' + ((body.error && body.error.message) || resp.status));
  }
  return resp.json();
}

function report(from, groupBy) {
  return api('/admin/reports/cost?from=' + encodeURIComponent(from) + '&group_by=' + encodeURIComponent(groupBy));
}

// ---- state ----

const state = { dim: 'key', data: null, auditCursor: null };

function showLogin(message) {
  $('app').hidden = true;
  $('controls').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('admin-key').focus();
}

async function load() {
  const app = $('app');
  app.dataset.state = 'loading';
  $('status').textContent = 'Loading…';
  $('status').className = 'status';
  try {
    const overview = await api('/admin/overview');
    timeZone = overview.time_zone;
    const n = Number($('range').value);
    const from = addDays(overview.today, -(n - 1));
    const [byKey, byModel, byProvider, dayKey, dayModel, dayProvider, dayCache, providers, cache, audit, guards] = await Promise.all([
      report(from, 'key'), report(from, 'model'), report(from, 'provider'),
      report(from, 'day,key'), report(from, 'day,model'), report(from, 'day,provider'), report(from, 'day,cache'),
      api('/admin/providers'), api('/admin/cache'), api('/admin/audit?limit=50'), api('/admin/guards'),
    ]);
    state.data = { overview, from, n, byKey, byModel, byProvider, day: { key: dayKey, model: dayModel, provider: dayProvider }, dayCache, providers, cache, audit, guards };
    render();
    $('login').hidden = true;
    $('controls').hidden = false;
    app.hidden = false;
    $('status').textContent = '';
    $('updated').textContent = 'updated ' + fmtTime(overview.now, { second: '2-digit' });
    app.dataset.state = 'ready';
  } catch (e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(KEY);
      app.dataset.state = 'idle';
      showLogin(e.message === 'no admin key' ? '' : 'Refused: ' + e.message);
      return;
    }
    app.hidden = false;
    app.dataset.state = 'error';
    $('status').textContent = 'Could not load the dashboard: ' + e.message;
    $('status').className = 'status bad';
  }
}

function keyNames() {
  const names = new Map();
  for (const k of state.data.overview.keys) names.set(k.id, k.name || k.id);
  return names;
}

function labelOf(dim, value, names) {
  if (dim === 'key') return names.get(value) || value || '(no key)';
  return value || (dim === 'model' || dim === 'provider' ? '(not served)' : '(none)');
}

// ---- rendering ----

function render() {
  const d = state.data;
  const t = d.byKey.disabled ? null : d.byKey.totals;
  $('range-from').textContent = d.from;
  $('tz').textContent = d.overview.time_zone;
  $('range-label').textContent = d.n === 1 ? 'today' : 'last ' + d.n + ' days';
  $('kpi-range').textContent = d.n === 1 ? 'today' : 'last ' + d.n + ' days';
  if (t) {
    setMoney($('kpi-spend'), t.cost_usd);
    setMoney($('kpi-saved'), t.saved_usd);
    const total = Number(t.cost_usd) + Number(t.saved_usd);
    $('kpi-saved-rate').textContent = total > 0 ? pct(Number(t.saved_usd) / total) + ' of what it would have cost' : 'nothing to save yet';
    $('kpi-requests').textContent = count(t.requests);
    $('kpi-requests').dataset.value = t.requests;
    $('kpi-tokens').textContent = count(t.prompt_tokens) + ' in · ' + count(t.completion_tokens) + ' out tokens';
  } else {
    for (const id of ['kpi-spend', 'kpi-saved', 'kpi-requests']) $(id).textContent = '—';
    $('kpi-saved-rate').textContent = 'budgets are not enabled';
  }
  renderCacheKPI(d.cache);
  renderBreakersKPI(d.providers);
  renderSpendChart();
  renderSavedChart();
  const names = keyNames();
  renderGroupTable($('by-key'), d.byKey, 'key', names);
  renderGroupTable($('by-model'), d.byModel, 'model', names);
  renderGroupTable($('by-provider'), d.byProvider, 'provider', names);
  renderBudgets(d.overview);
  renderCache(d.cache);
  renderRefusals(d.overview.semantic_refusals);
  renderGuards(d.guards);
  renderBreakers(d.providers);
  renderKeys(d.overview, d.byKey);
  state.auditCursor = null;
  $('audit').replaceChildren();
  renderAudit(d.audit, false);
}

// exact is an amount as the API writes it, six decimals: JSON.parse made
// it a float, exact to the micro-dollar below $9 billion.
const exact = (v) => Number(v).toFixed(6);

function setMoney(e, v) {
  e.textContent = usd(v);
  e.dataset.usd = exact(v);
  e.title = '$' + exact(v);
}

function moneyCell(v, testid) {
  return el('td', { class: 'num', 'data-testid': testid, 'data-usd': exact(v), title: '$' + exact(v) }, usd(v));
}

function renderCacheKPI(cache) {
  if (!cache || cache.disabled) {
    $('kpi-hits').textContent = 'off';
    $('kpi-hits-hint').textContent = 'no response cache';
    return;
  }
  const s = cache.stats;
  const lookups = s.hits + s.semantic_hits + s.misses;
  $('kpi-hits').textContent = lookups ? pct((s.hits + s.semantic_hits) / lookups) : '—';
  $('kpi-hits-hint').textContent = count(s.hits) + ' exact · ' + count(s.semantic_hits) + ' semantic of ' + count(lookups);
}

function renderBreakersKPI(p) {
  const list = (p && p.data) || [];
  const open = list.filter((d) => d.state === 'open').length;
  const half = list.filter((d) => d.state === 'half-open').length;
  const e = $('kpi-breakers');
  e.textContent = open ? open + ' open' : half ? half + ' half-open' : 'all closed';
  e.className = 'value' + (open ? ' bad' : '');
  $('kpi-breakers-hint').textContent = list.length + ' deployment' + (list.length === 1 ? '' : 's');
}

// series turns report rows grouped by day and one more name into the
// chart's days and stacked series (the TOP largest, then "other").
function series(rep, dim, field, labelFn) {
  const d = state.data;
  const x = days(d.from, d.overview.today);
  const totals = new Map();
  const cells = new Map();
  for (const r of rep.rows || []) {
    const v = Number(r[field]);
    const g = r[dim];
    totals.set(g, (totals.get(g) || 0) + v);
    cells.set(r.day + '\u0000' + g, (cells.get(r.day + '\u0000' + g) || 0) + v);
  }
  const ranked = [...totals.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  const shown = ranked.slice(0, ranked.length > TOP ? TOP - 1 : TOP).map(([g]) => g);
  const rest = ranked.slice(shown.length).map(([g]) => g);
  const out = shown.map((g, i) => ({ name: labelFn(g), color: PALETTE[i], values: x.map((day) => cells.get(day + '\u0000' + g) || 0) }));
  if (rest.length) {
    out.push({ name: 'other (' + rest.length + ')', color: PALETTE[PALETTE.length - 1],
      values: x.map((day) => rest.reduce((s, g) => s + (cells.get(day + '\u0000' + g) || 0), 0)) });
  }
  return { x, series: out };
}

function renderSpendChart() {
  const d = state.data;
  const rep = d.day[state.dim];
  const box = $('chart-spend');
  if (rep.disabled) return box.replaceChildren(el('p', { class: 'empty' }, 'Budgets are not enabled: there is no ledger to chart.'));
  const names = keyNames();
  const s = series(rep, state.dim, 'cost_usd', (g) => labelOf(state.dim, g, names));
  box.replaceChildren(...barChart(s.x, s.series, 'Spend'));
}

function renderSavedChart() {
  const d = state.data;
  const box = $('chart-saved');
  if (d.dayCache.disabled) return box.replaceChildren(el('p', { class: 'empty' }, 'Budgets are not enabled: there is no ledger to chart.'));
  // A ledger row saved money as an exact hit, a semantic hit, or (served
  // by an upstream) through a budget downgrade to a cheaper model.
  const cause = (c) => (c === 'hit' ? 'exact' : c === 'semantic-hit' ? 'semantic' : 'downgrade');
  const rows = (d.dayCache.rows || []).map((r) => Object.assign({}, r, { cause: cause(r.cache) }));
  const s = series({ rows }, 'cause', 'saved_usd', (g) => ({ exact: 'exact cache hits', semantic: 'semantic cache hits', downgrade: 'budget downgrades' })[g]);
  for (const ser of s.series) {
    const k = Object.keys(SAVED_COLORS).find((c) => ser.name.startsWith(c === 'exact' ? 'exact' : c === 'semantic' ? 'semantic' : 'budget'));
    if (k) ser.color = SAVED_COLORS[k];
  }
  box.replaceChildren(...barChart(s.x, s.series, 'Saved'));
}

// barChart draws stacked bars per day as inline SVG, with a y axis, day
// labels, a legend and a native tooltip (<title>) per bar segment.
function barChart(x, ser, what) {
  if (!ser.length) return [el('p', { class: 'empty' }, 'Nothing ' + (what === 'Spend' ? 'spent' : 'saved') + ' in this range yet.')];
  const W = 640, H = 230, L = 68, R = 8, T = 10, B = 26;
  const totals = x.map((_, i) => ser.reduce((s, t) => s + t.values[i], 0));
  const max = niceMax(Math.max(...totals));
  const pw = W - L - R, ph = H - T - B;
  const bw = Math.max(2, Math.min(36, (pw / x.length) * 0.7));
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': what + ' per day' });
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = T + ph - (ph * i) / 4;
    g.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
    g.append(svg('text', { class: 'axis', x: L - 6, y: y + 4, 'text-anchor': 'end' }, usdAxis(v)));
  }
  const every = Math.ceil(x.length / 10);
  x.forEach((day, i) => {
    const cx = L + (pw / x.length) * (i + 0.5);
    let y = T + ph;
    ser.forEach((s) => {
      const v = s.values[i];
      if (v <= 0) return;
      const h = (v / max) * ph;
      y -= h;
      g.append(svg('rect', { x: cx - bw / 2, y, width: bw, height: Math.max(h, 0.5), fill: s.color, rx: 1.5 },
        svg('title', {}, day + ' · ' + s.name + ': ' + usd(v))));
    });
    if ((x.length - 1 - i) % every === 0) { // counted from today, which is always labelled
      g.append(svg('text', { class: 'axis', x: cx, y: H - 8, 'text-anchor': 'middle' }, fmtDay(day)));
    }
  });
  const legend = el('div', { class: 'legend' }, ser.map((s) =>
    el('span', { title: s.name }, svg('svg', { width: 10, height: 10, viewBox: '0 0 10 10' }, svg('rect', { width: 10, height: 10, rx: 2, fill: s.color })), s.name)));
  return [g, legend];
}

function fmtDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Intl.DateTimeFormat('en-GB', { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(new Date(Date.UTC(y, m - 1, d)));
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function renderGroupTable(table, rep, dim, names) {
  if (rep.disabled) return table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { class: 'muted' }, 'Budgets are not enabled.'))));
  const rows = [...(rep.rows || [])].sort((a, b) => Number(b.cost_usd) - Number(a.cost_usd) || Number(b.saved_usd) - Number(a.saved_usd));
  const head = el('thead', {}, el('tr', {}, el('th', {}, dim), el('th', { class: 'num' }, 'Requests'), el('th', { class: 'num' }, 'Spend'), el('th', { class: 'num' }, 'Saved')));
  const body = el('tbody', {}, rows.length ? rows.map((r) => {
    const label = labelOf(dim, r[dim], names);
    return el('tr', { 'data-testid': 'group-row', 'data-group': r[dim] },
      el('td', { class: 'name', title: dim === 'key' ? r[dim] : null }, label),
      el('td', { class: 'num' }, count(r.requests)),
      moneyCell(r.cost_usd, 'spend'), moneyCell(r.saved_usd, 'saved'));
  }) : el('tr', {}, el('td', { class: 'muted', colspan: 4 }, 'No requests in this range.')));
  const t = rep.totals;
  const foot = el('tfoot', {}, el('tr', {}, el('td', {}, 'Total'), el('td', { class: 'num' }, count(t.requests)), moneyCell(t.cost_usd, 'spend-total'), moneyCell(t.saved_usd, 'saved-total')));
  table.replaceChildren(head, body, foot);
}

function renderBudgets(ov) {
  const table = $('budgets');
  if (!ov.budgets_enabled) return table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { class: 'muted' }, 'Budgets are not enabled on this gateway.'))));
  const rows = [];
  for (const k of ov.keys) {
    if (k.revoked) continue;
    for (const b of k.budgets) rows.push({ k, b });
  }
  // Soonest exhaustion first: exhausted, then before the reset, then the rest.
  const rank = ({ b }) => (b.exhausted ? 0 : b.exhausts_before_reset ? 1 : 2);
  rows.sort((p, q) => rank(p) - rank(q) || (p.b.exhausts_at || '9').localeCompare(q.b.exhausts_at || '9'));
  const head = el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Period'), el('th', {}, 'Used'), el('th', { class: 'num' }, 'Spent'),
    el('th', { class: 'num' }, 'Limit'), el('th', { class: 'num' }, 'Remaining'), el('th', { class: 'num' }, 'Rate / h'), el('th', {}, 'Projection'), el('th', {}, 'Resets')));
  const now = Date.parse(ov.now);
  const body = el('tbody', {}, rows.length ? rows.map(({ k, b }) => {
    const used = Number(b.limit_usd) > 0 ? (Number(b.spent_usd) + Number(b.reserved_usd)) / Number(b.limit_usd) : 0;
    let proj, cls;
    if (b.exhausted) {
      proj = 'Exhausted'; cls = 'bad';
    } else if (!b.exhausts_at) {
      // Beyond the projection's horizon (years), or nothing spent yet.
      proj = Number(b.spent_usd) === 0 ? 'No spend yet' : b.resets_at ? 'Lasts until the reset' : 'Lasts for years at this rate';
      cls = 'ok';
    } else if (b.exhausts_before_reset) {
      proj = 'Runs out ' + fmtTime(b.exhausts_at) + ' (in ' + fmtDuration(Date.parse(b.exhausts_at) - now) + (b.resets_at ? ', ' + fmtDuration(Date.parse(b.resets_at) - Date.parse(b.exhausts_at)) + ' before the reset)' : ')');
      cls = 'bad';
    } else {
      proj = 'Lasts until the reset (at this rate, ' + fmtTime(b.exhausts_at, { hour: undefined, minute: undefined }) + ')';
      cls = 'ok';
    }
    return el('tr', { 'data-testid': 'budget-row', 'data-key': k.id, 'data-period': b.period },
      el('td', { class: 'name', title: k.id }, k.name || k.id), el('td', {}, b.period),
      el('td', {}, usageBar(used)),
      moneyCell(b.spent_usd, 'budget-spent'), moneyCell(b.limit_usd, 'budget-limit'), moneyCell(b.remaining_usd, 'budget-remaining'),
      el('td', { class: 'num' }, usd(b.rate_usd_per_hour)),
      el('td', { class: 'proj ' + cls, 'data-testid': 'budget-projection' }, proj),
      el('td', { class: 'small muted' }, b.resets_at ? fmtTime(b.resets_at) : 'never'));
  }) : el('tr', {}, el('td', { class: 'muted', colspan: 9 }, 'No key has a budget limit.')));
  table.replaceChildren(head, body);
}

function usageBar(f) {
  const w = 120, clamped = Math.min(Math.max(f, 0), 1);
  const color = f >= 1 ? '#c53030' : f >= 0.8 ? '#d69e2e' : '#3b4fd8';
  return el('span', { title: pct(f) + ' used' },
    svg('svg', { width: w, height: 8, viewBox: `0 0 ${w} 8`, role: 'img', 'aria-label': pct(f) + ' used' },
      svg('rect', { width: w, height: 8, rx: 4, fill: '#e9ecf2' }),
      svg('rect', { width: Math.max(clamped * w, f > 0 ? 3 : 0), height: 8, rx: 4, fill: color })),
    el('span', { class: 'small muted' }, ' ' + pct(f)));
}

function renderCache(cache) {
  const box = $('cache');
  if (!cache || cache.disabled) return box.replaceChildren(el('p', { class: 'empty' }, 'The response cache is not enabled.'));
  const s = cache.stats;
  const lookups = s.hits + s.semantic_hits + s.misses;
  const stat = (label, value, testid) => el('div', { class: 'stat' }, el('div', { class: 'label' }, label), el('div', { class: 'value', 'data-testid': testid }, value));
  box.replaceChildren(el('div', { class: 'stats' },
    stat('Exact hit rate', lookups ? pct(s.hits / lookups) : '—', 'exact-rate'),
    stat('Semantic hit rate', lookups ? pct(s.semantic_hits / lookups) : '—', 'semantic-rate'),
    stat('Saved by hits', usd(s.saved_usd), 'cache-saved'),
    stat('Exact hits', count(s.hits), 'exact-hits'),
    stat('Semantic hits', count(s.semantic_hits), 'semantic-hits'),
    stat('Misses · bypasses', count(s.misses) + ' · ' + count(s.bypasses), 'misses'),
    stat('Entries', count(s.entries), 'entries'),
    stat('Size', (s.bytes / 1024).toLocaleString('en-US', { maximumFractionDigits: 1 }) + ' KiB', 'bytes'),
    stat('Guard refusals', count(s.guard_refusals), 'guard-refusals')),
    el('p', { class: 'small muted' }, s.embedder ? 'Semantic cache: ' + s.embedder + ', ' + count(s.index_points) + ' vectors indexed.' : 'Semantic cache off: exact hits only.'));
}

function renderRefusals(ref) {
  const box = $('refusals');
  if (!ref) return box.replaceChildren(el('p', { class: 'empty' }, 'Metrics are not enabled, so refusals are not counted.'));
  const rows = Object.entries(ref).sort((a, b) => b[1] - a[1]);
  if (!rows.length) return box.replaceChildren(el('p', { class: 'empty' }, 'No semantic candidate refused since the start.'));
  const W = 560, row = 24, L = 130, max = Math.max(...rows.map(([, n]) => n));
  const g = svg('svg', { viewBox: `0 0 ${W} ${rows.length * row + 4}`, role: 'img', 'aria-label': 'Semantic refusals by rule' });
  rows.forEach(([rule, n], i) => {
    const y = i * row + 2, w = ((W - L - 60) * n) / max;
    g.append(svg('text', { class: 'axis', x: L - 8, y: y + 15, 'text-anchor': 'end' }, rule));
    g.append(svg('rect', { x: L, y: y + 4, width: Math.max(w, 2), height: row - 9, rx: 3, fill: rule === 'judge' ? '#8b5cf6' : '#f59e0b' }, svg('title', {}, rule + ': ' + count(n))));
    g.append(svg('text', { class: 'axis', x: L + Math.max(w, 2) + 6, y: y + 15 }, count(n)));
  });
  box.replaceChildren(el('div', { class: 'chart' }, g));
}

// renderGuards lists the configured guards (GET /admin/guards) with their
// hits since the start: names and counts only, no matched text exists.
function renderGuards(g) {
  const table = $('guards');
  if (!g || g.disabled) return table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { class: 'muted' }, 'This gateway does not list guards.'))));
  const list = g.guards || [];
  const head = el('thead', {}, el('tr', {}, el('th', {}, 'Guard'), el('th', {}, 'Detects'), el('th', {}, 'Action'), el('th', {}, 'Scans'),
    el('th', {}, 'Routes'), el('th', { class: 'num' }, 'Request hits'), el('th', { class: 'num' }, 'Answer hits'), el('th', { class: 'num' }, 'Blocked')));
  const actionBadge = { block: 'bad', mask: 'warn', log: 'off' };
  const body = el('tbody', {}, list.length ? list.map((x) => {
    const h = x.hits || {};
    const scans = [x.request ? 'requests' : null, x.answer ? 'answers' : null].filter(Boolean).join(' + ');
    const routes = (x.routes || []).map((r) => (r === '*' ? 'default' : r)).join(', ');
    return el('tr', { 'data-testid': 'guard-row', 'data-guard': x.name },
      el('td', { class: 'mono name', 'data-testid': 'guard-name' }, x.name),
      el('td', { class: 'small' }, (x.detectors || []).join(', ') || '—'),
      el('td', {}, el('span', { class: 'badge ' + (actionBadge[x.action] || 'off') }, x.action), x.unmask_answers ? el('span', { class: 'small muted' }, ' unmasks answers') : null),
      el('td', { class: 'small' }, scans || '—'),
      el('td', { class: 'small name' }, routes || 'none'),
      el('td', { class: 'num', 'data-testid': 'guard-request' }, count(h.request)),
      el('td', { class: 'num', 'data-testid': 'guard-answer' }, count(h.answer)),
      el('td', { class: 'num', 'data-testid': 'guard-blocked' }, count(h.blocked)));
  }) : el('tr', {}, el('td', { class: 'muted', colspan: 8 }, 'No guards configured: prompts and answers pass unchanged.')));
  table.replaceChildren(head, body);
}

function renderBreakers(p) {
  const table = $('breakers');
  const list = (p && p.data) || [];
  const head = el('thead', {}, el('tr', {}, el('th', {}, 'Deployment'), el('th', {}, 'Model'), el('th', {}, 'Provider'), el('th', {}, 'State'),
    el('th', { class: 'num' }, 'Requests'), el('th', { class: 'num' }, 'Failures'), el('th', {}, 'Last error'), el('th', {}, 'Probes from')));
  const body = el('tbody', {}, list.length ? list.map((d) => {
    const st = d.state || 'closed';
    const cls = st === 'open' ? 'bad' : st === 'half-open' ? 'warn' : 'ok';
    const c = d.counts || {};
    return el('tr', { 'data-testid': 'breaker-row', 'data-deployment': d.id },
      el('td', { class: 'mono name' }, d.id), el('td', {}, d.model), el('td', {}, d.provider),
      el('td', {}, el('span', { class: 'badge ' + cls }, st), d.rate_limited_until ? el('span', { class: 'badge warn' }, ' rate-limited') : null),
      el('td', { class: 'num' }, count(c.requests)), el('td', { class: 'num' }, count(c.failures)),
      el('td', { class: 'small' }, d.last_error ? d.last_error + ' · ' + fmtTime(d.last_error_at) : '—'),
      el('td', { class: 'small' }, d.open_until ? fmtTime(d.open_until, { second: '2-digit' }) : '—'));
  }) : el('tr', {}, el('td', { class: 'muted', colspan: 8 }, 'No deployments.')));
  table.replaceChildren(head, body);
}

function renderKeys(ov, byKey) {
  const spend = new Map();
  for (const r of (byKey.rows || [])) spend.set(r.key, r);
  const keys = [...ov.keys].sort((a, b) => (a.revoked - b.revoked) || (Number(b.spent_month_usd) - Number(a.spent_month_usd)) || a.name.localeCompare(b.name));
  const head = el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Id'), el('th', {}, 'Hint'), el('th', {}, 'Created'), el('th', {}, 'Status'),
    el('th', {}, 'Budgets'), el('th', { class: 'num' }, 'Today'), el('th', { class: 'num' }, 'This month'), el('th', { class: 'num' }, 'In range')));
  const body = el('tbody', {}, keys.length ? keys.map((k) => {
    const r = spend.get(k.id);
    return el('tr', { class: k.revoked ? 'revoked' : null, 'data-testid': 'key-row', 'data-key': k.id },
      el('td', { class: 'name', 'data-testid': 'key-name' }, k.name || '(unnamed)'), el('td', { class: 'mono' }, k.id), el('td', { class: 'mono' }, k.hint),
      el('td', { class: 'small' }, fmtTime(k.created_at)),
      el('td', {}, el('span', { class: 'badge ' + (k.revoked ? 'off' : 'ok') }, k.revoked ? 'revoked' : 'active')),
      el('td', { class: 'small' }, k.budgets.length ? k.budgets.map((b) => b.period + ' ' + usd(b.limit_usd)).join(', ') : (k.own_policy ? 'none' : 'defaults')),
      moneyCell(k.spent_today_usd, 'key-today'), moneyCell(k.spent_month_usd, 'key-month'), moneyCell(r ? r.cost_usd : '0.000000', 'key-range'));
  }) : el('tr', {}, el('td', { class: 'muted', colspan: 9 }, 'No keys yet: create one with POST /admin/keys.')));
  $('keys').replaceChildren(head, body);
}

function renderAudit(page, append) {
  const table = $('audit');
  const more = $('audit-more');
  if (page.disabled) {
    more.hidden = true;
    return table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { class: 'muted' }, 'The audit log is not enabled on this gateway.'))));
  }
  if (!append || !table.tHead) {
    table.replaceChildren(el('thead', {}, el('tr', {}, el('th', {}, 'Time'), el('th', {}, 'Action'), el('th', {}, 'Target'), el('th', {}, 'Actor'), el('th', {}, 'Request'), el('th', {}, 'Change'))), el('tbody'));
  }
  const body = table.tBodies[0];
  const names = keyNames();
  for (const e of page.data || []) {
    const a = e.actor || {};
    const who = [a.name, a.remote_addr].filter(Boolean).join(' · ') || a.kind || 'admin';
    const target = names.has(e.target) ? names.get(e.target) + ' (' + e.target + ')' : e.target;
    body.append(el('tr', { 'data-testid': 'audit-row', 'data-action': e.action, 'data-target': e.target },
      el('td', { class: 'small', title: e.time }, fmtTime(e.time, { second: '2-digit' })),
      el('td', {}, el('span', { class: 'badge ' + (/revoke|delete/.test(e.action) ? 'bad' : 'off') }, e.action)),
      el('td', { class: 'name', 'data-testid': 'audit-target' }, target || '—'),
      el('td', { class: 'small name', title: a.user_agent || '' }, who),
      el('td', { class: 'mono small' }, e.request_id),
      el('td', {}, change(e))));
  }
  if (!body.rows.length) body.append(el('tr', {}, el('td', { class: 'muted', colspan: 6 }, 'No admin action recorded yet.')));
  state.auditCursor = page.has_more ? page.next_cursor : null;
  more.hidden = !state.auditCursor;
}

function change(e) {
  if (!e.before && !e.after) return '—';
  const pretty = (v) => (v === null || v === undefined ? '(none)' : JSON.stringify(v, null, 2));
  return el('details', {}, el('summary', {}, 'before / after'),
    el('pre', {}, 'before: ' + pretty(e.before) + '\n\nafter: ' + pretty(e.after)));
}

// ---- wiring ----

function init() {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('admin-key').value.trim();
    if (!v) return;
    sessionStorage.setItem(KEY, v);
    $('admin-key').value = '';
    load();
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    state.data = null;
    showLogin('');
  });
  $('refresh').addEventListener('click', load);
  $('range').addEventListener('change', load);
  $('spend-dim').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-dim]');
    if (!b || !state.data) return;
    state.dim = b.dataset.dim;
    for (const o of $('spend-dim').querySelectorAll('button')) o.classList.toggle('on', o === b);
    renderSpendChart();
  });
  $('audit-more').addEventListener('click', async () => {
    if (!state.auditCursor) return;
    try {
      renderAudit(await api('/admin/audit?limit=50&after=' + encodeURIComponent(state.auditCursor)), true);
    } catch (e) {
      $('status').textContent = 'Could not load older audit entries: ' + e.message;
    }
  });
  if (sessionStorage.getItem(KEY)) load();
  else showLogin('');
}

init();
