/*
 * healthstream CSM page: the at-risk accounts, their drivers and score history,
 * and the alerts a CSM acts on, kept current over Server-Sent Events.
 *
 * Plain modern JavaScript on purpose: the alerts service serves these three
 * files as they are, so there is no build step, no framework and no CDN to
 * trust or to be down. All text from the API goes through textContent (never
 * innerHTML), so an account id or a driver sentence cannot inject markup.
 */
"use strict";

(() => {
  // ---------------------------------------------------------------- constants

  const API = new URL(document.documentElement.dataset.api || "/v1/", location.href);
  const KEY_STORAGE = "healthstream.apiKey";
  const VIEW_STORAGE = "healthstream.view";
  const PREFS_STORAGE = "healthstream.alertsPage";
  const PAGE_SIZE = 200;
  const AUTO_PAGES = 5; // pages fetched per status before offering "Load more"

  const SEVERITY_RANK = { critical: 3, warning: 2, info: 1 };
  const STATUS_RANK = { open: 0, acknowledged: 1, snoozed: 2, resolved: 3 };
  // Status filter -> the statuses asked from the API (repeatable ?status=); [] = any.
  const STATUS_SETS = {
    active: ["open", "acknowledged"],
    open: ["open"],
    acknowledged: ["acknowledged"],
    snoozed: ["snoozed"],
    resolved: ["resolved"],
    all: [],
  };
  const REASON_LABEL = {
    entered_red: "Entered the red band",
    score_drop: "Score dropped sharply",
    payment_failed: "Payment failed",
    past_due: "Invoice past due",
    usage_decline: "Usage declining",
    inactivity: "No recent activity",
    ticket_past_sla: "Urgent ticket past SLA",
    nps_detractor: "NPS detractor",
    renewal_at_risk: "Renewal at risk",
    model_risk_spike: "Churn risk spiked",
  };
  const STATUS_LABEL = {
    open: "Open",
    acknowledged: "Acknowledged",
    snoozed: "Snoozed",
    resolved: "Resolved",
  };

  // -------------------------------------------------------------------- state

  const state = {
    key: null,
    me: null, // who "My accounts" means: typed in once, kept in local storage
    meFromServer: false, // true when GET /v1/me named the key's CSM ("My accounts" needs no typing)
    identity: null, // GET /v1/me: { actor, csm, scopes, can_write, admin, sees_all_accounts }
    filters: { severity: "", status: "active", mine: false, text: "", sort: "risk" },
    view: null, // { accountId, alertId } when the URL names one account (/?account= or /accounts/…)
    accounts: new Map(), // account_id -> account
    alerts: new Map(), // alert_id -> alert
    cursor: null, // next_cursor of the last alerts page
    requestedAccounts: new Set(),
    loaded: false,
    loadSeq: 0,
    source: null,
    streamRetry: 1000,
    everDisconnected: false,
    flash: new Set(), // alert ids to highlight on next render
    streamed: new Map(), // alert id -> when the stream last delivered it (survives reloads)
    expanded: new Set(), // alert ids whose history is open
    audit: new Map(), // alert id -> { version (updated_at), items | null, error }
    ownActions: new Map(), // alert id -> timestamp of our own last action (no self-announcements)
    cards: new Map(), // account_id -> { el, signature }
    chart: null, // the uPlot chart of the account page
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ helpers

  /** Build an element: h("button", {class: "x", onclick: fn}, "text", child). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    appendChildren(el, children);
    return el;
  }

  function appendChildren(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function bandFor(score) {
    if (score <= 50) return "red";
    if (score <= 75) return "yellow";
    return "green";
  }

  function parseTime(value) {
    const t = value ? Date.parse(value) : NaN;
    return Number.isFinite(t) ? t : null;
  }

  const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const absoluteFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
  const shortFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
  });

  function relativeTime(ms) {
    const diff = (ms - Date.now()) / 1000;
    const abs = Math.abs(diff);
    if (abs < 45) return diff <= 0 ? "just now" : "in a moment";
    const units = [
      ["minute", 60, 3600],
      ["hour", 3600, 86400],
      ["day", 86400, 86400 * 30],
      ["month", 86400 * 30, 86400 * 365],
      ["year", 86400 * 365, Infinity],
    ];
    for (const [unit, size, limit] of units) {
      if (abs < limit) return relativeFormat.format(Math.round(diff / size), unit);
    }
    return "";
  }

  function timeEl(value) {
    const ms = parseTime(value);
    if (ms === null) return h("span", { class: "muted" }, "—");
    return h(
      "time",
      { datetime: new Date(ms).toISOString(), title: absoluteFormat.format(ms), dataset: { ts: String(ms) } },
      relativeTime(ms),
    );
  }

  function fmtScore(score) {
    return typeof score === "number" && Number.isFinite(score) ? String(Math.round(score)) : "–";
  }

  function sameName(a, b) {
    return !!a && !!b && a.trim().toLowerCase() === b.trim().toLowerCase();
  }

  function loadPrefs() {
    try {
      const saved = JSON.parse(localStorage.getItem(PREFS_STORAGE) || "{}");
      if (saved.filters) Object.assign(state.filters, saved.filters);
      if (saved.me) state.me = saved.me;
    } catch {
      /* corrupt preferences are simply ignored */
    }
  }

  function savePrefs() {
    const me = state.meFromServer ? null : state.me;
    localStorage.setItem(PREFS_STORAGE, JSON.stringify({ filters: state.filters, me }));
  }

  // ---------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** FastAPI errors come as {detail: "text"} or {detail: [{loc, msg}]}: name the field. */
  function describeError(body, status) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail
        .map((d) => {
          const loc = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
          return loc ? `${loc}: ${d.msg}` : d.msg;
        })
        .join("; ");
    }
    return `HTTP ${status}`;
  }

  /** The lead's choice of whose accounts to show; only leads are offered one. */
  function chosenView() {
    const leads = state.identity && state.identity.leads;
    return leads && leads.length ? localStorage.getItem(VIEW_STORAGE) : null;
  }

  async function api(path, { method = "GET", body, params } = {}) {
    const url = new URL(path.replace(/^\//, ""), API);
    const view = chosenView(); // teams.js: "mine" or "team"
    if (view) url.searchParams.set("view", view);
    for (const [k, v] of Object.entries(params || {})) {
      for (const value of Array.isArray(v) ? v : [v]) {
        if (value !== null && value !== undefined && value !== "") url.searchParams.append(k, value);
      }
    }
    const headers = { "X-API-Key": state.key, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "The alerts service cannot be reached.");
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, describeError(data, response.status));
      if (response.status === 401) askForKey("That API key was not accepted. Please enter a valid key.");
      throw error;
    }
    return data;
  }

  const itemsOf = (data) => (Array.isArray(data) ? data : (data && (data.items || data.accounts)) || []);

  // --------------------------------------------------------------- data model

  function upsertAlert(alert) {
    const old = state.alerts.get(alert.alert_id);
    if (old) {
      // SSE and our own POST responses race: never let an older version win.
      const oldT = parseTime(old.updated_at);
      const newT = parseTime(alert.updated_at);
      if (oldT !== null && newT !== null && newT < oldT) return false;
    }
    state.alerts.set(alert.alert_id, { ...old, ...alert });
    noteAccountFromAlert(alert);
    return true;
  }

  /**
   * Flatten an AccountSummary (docs/alerts.md) into what the card shows. `health`
   * is null until the first account-health update: the alerts' scores stand in.
   */
  function upsertAccount(raw) {
    const old = state.accounts.get(raw.account_id) || {};
    const { alerts, health, ...rest } = raw;
    const account = { ...old, ...rest, synthetic: false };
    if (health) {
      account.score = health.score;
      account.band = health.band;
      account.drivers = health.drivers || [];
      account.as_of = health.as_of;
    }
    if (!Array.isArray(account.history)) account.history = [];
    state.accounts.set(account.account_id, account);
    if (Array.isArray(alerts)) for (const alert of alerts) upsertAlert(alert);
  }

  /** Keep an account's headline score current with what its newest alert says. */
  function noteAccountFromAlert(alert) {
    let account = state.accounts.get(alert.account_id);
    const at = parseTime(alert.occurred_at);
    if (!account) {
      account = {
        account_id: alert.account_id,
        csm: alert.csm,
        score: alert.score,
        band: bandFor(alert.score),
        drivers: alert.drivers || [],
        history: alert.occurred_at ? [{ as_of: alert.occurred_at, score: alert.score }] : [],
        synthetic: true,
      };
      state.accounts.set(alert.account_id, account);
      fetchAccount(alert.account_id);
      return;
    }
    const history = account.history || [];
    const latest = history.length ? parseTime(history[history.length - 1].as_of) : null;
    if (at !== null && (latest === null || at > latest) && typeof alert.score === "number") {
      account.history = [...history, { as_of: alert.occurred_at, score: alert.score }];
      account.score = alert.score;
      account.band = bandFor(alert.score);
      if (alert.drivers && alert.drivers.length) account.drivers = alert.drivers;
    }
    if (typeof account.score !== "number" && typeof alert.score === "number") {
      account.score = alert.score;
      account.band = bandFor(alert.score);
    }
    if ((!account.drivers || !account.drivers.length) && alert.drivers) account.drivers = alert.drivers;
    if (!account.csm && alert.csm) account.csm = alert.csm;
  }

  async function fetchAccount(accountId) {
    if (state.requestedAccounts.has(accountId)) return;
    state.requestedAccounts.add(accountId);
    try {
      const data = await api(`accounts/${encodeURIComponent(accountId)}`);
      if (data && data.account_id) {
        upsertAccount(data);
        scheduleRender();
      }
    } catch {
      /* the alert itself carries score and drivers: good enough to show */
    }
  }

  async function fetchAlertPages(firstCursor, pages) {
    let cursor = firstCursor;
    for (let page = 0; page < pages; page += 1) {
      const data = await api("alerts", {
        params: {
          status: STATUS_SETS[state.filters.status] || STATUS_SETS.active,
          severity: state.filters.severity,
          cursor,
          limit: PAGE_SIZE,
        },
      });
      for (const alert of itemsOf(data)) upsertAlert(alert);
      cursor = (data && data.next_cursor) || null;
      state.cursor = cursor;
      if (!cursor) break;
    }
  }

  /**
   * (Re)load accounts and alerts. The alerts are loaded into a fresh map and
   * swapped in, so an alert resolved while the stream was down does not linger;
   * changes the stream delivered during the load are kept on top. `quiet`
   * skips the loading line (periodic refresh).
   */
  async function loadAll({ quiet = false } = {}) {
    if (state.view) {
      await loadAccountView();
      return;
    }
    const seq = ++state.loadSeq;
    const startedAt = Date.now();
    if (!quiet) $("loading").hidden = false;
    $("banner").hidden = true;
    const previous = state.alerts;
    try {
      // Resolved alerts belong to accounts that may no longer be at risk.
      const wantsResolved = ["resolved", "all"].includes(state.filters.status);
      const accounts = await api("accounts", { params: { at_risk: wantsResolved ? "false" : "true", limit: 500 } });
      if (seq !== state.loadSeq) return;
      state.alerts = new Map();
      for (const account of itemsOf(accounts)) upsertAccount(account);
      await fetchAlertPages(null, AUTO_PAGES);
      if (seq !== state.loadSeq) return;
      for (const [alertId, receivedAt] of state.streamed) {
        if (receivedAt >= startedAt && previous.has(alertId)) upsertAlert(previous.get(alertId));
        else if (receivedAt < startedAt) state.streamed.delete(alertId);
      }
      state.loaded = true;
    } catch (error) {
      if (state.alerts !== previous && seq === state.loadSeq) {
        // Keep showing what we had rather than a half-loaded list.
        for (const [alertId, alert] of previous) if (!state.alerts.has(alertId)) state.alerts.set(alertId, alert);
      }
      if (seq !== state.loadSeq) return;
      if (error.status !== 401) showBanner(`Could not load alerts: ${error.message}`);
    } finally {
      if (seq === state.loadSeq) $("loading").hidden = true;
    }
    render();
  }

  async function loadMore() {
    const button = $("load-more");
    button.disabled = true;
    try {
      if (state.cursor) await fetchAlertPages(state.cursor, 1);
    } catch (error) {
      showBanner(`Could not load more alerts: ${error.message}`);
    } finally {
      button.disabled = false;
    }
    render();
  }

  // ---------------------------------------------------------------- filtering

  function alertMatches(alert) {
    const f = state.filters;
    const statuses = STATUS_SETS[f.status] || STATUS_SETS.active;
    if (statuses.length && !statuses.includes(alert.status)) return false;
    if (f.severity && alert.severity !== f.severity) return false;
    return true;
  }

  function accountMatches(account, alerts) {
    const f = state.filters;
    if (f.mine) {
      if (!state.me) return false;
      const mine =
        sameName(account.csm, state.me) ||
        alerts.some((a) => sameName(a.assigned_csm, state.me) || sameName(a.csm, state.me));
      if (!mine) return false;
    }
    if (f.text) {
      const needle = f.text.trim().toLowerCase();
      const hay = [account.account_id, account.name, account.csm, ...alerts.map((a) => a.assigned_csm)]
        .filter(Boolean)
        .join(" ")
        .toLowerCase();
      if (!hay.includes(needle)) return false;
    }
    return true;
  }

  function worstSeverity(alerts) {
    let worst = 0;
    for (const a of alerts) {
      if (a.status === "open" || a.status === "acknowledged") {
        worst = Math.max(worst, SEVERITY_RANK[a.severity] || 0);
      }
    }
    return worst;
  }

  const BAND_RANK = { red: 0, yellow: 1, green: 2 };
  const last = (value) => (value === null || value === undefined ? Infinity : value);

  /**
   * The orders of the "Sort by" control (the same as GET /v1/accounts?sort=): risk
   * is the account's state now (band, score, MRR at risk), not how severe an old
   * alert was. Unknown values sort last; ties go by account id.
   */
  const SORTS = {
    risk: (a, b) =>
      last(BAND_RANK[a.band]) - last(BAND_RANK[b.band]) ||
      last(a.score) - last(b.score) ||
      last(negate(a.mrr_at_risk)) - last(negate(b.mrr_at_risk)),
    score: (a, b) => last(a.score) - last(b.score),
    mrr_at_risk: (a, b) =>
      last(negate(a.mrr_at_risk)) - last(negate(b.mrr_at_risk)) || last(a.score) - last(b.score),
    renewal: (a, b) =>
      last(parseTime(a.renewal_date)) - last(parseTime(b.renewal_date)) || last(a.score) - last(b.score),
    last_change: (a, b) => last(negate(lastChange(a))) - last(negate(lastChange(b))),
  };

  function negate(value) {
    return typeof value === "number" && Number.isFinite(value) ? -value : null;
  }

  function lastChange(account) {
    return parseTime(account.last_change || account.as_of);
  }

  /** Accounts to show, in the chosen order (risk by default). */
  function visibleAccounts() {
    const byAccount = new Map();
    for (const alert of state.alerts.values()) {
      if (!alertMatches(alert)) continue;
      if (!byAccount.has(alert.account_id)) byAccount.set(alert.account_id, []);
      byAccount.get(alert.account_id).push(alert);
    }
    // An account is listed when it has an alert the filters select: at risk means
    // "has an unresolved alert" (docs/alerts.md), so the alerts decide.
    const rows = [];
    for (const [accountId, alerts] of byAccount) {
      const account = state.accounts.get(accountId) || { account_id: accountId, history: [], drivers: [] };
      if (!accountMatches(account, alerts)) continue;
      alerts.sort(
        (a, b) =>
          (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9) ||
          (SEVERITY_RANK[b.severity] || 0) - (SEVERITY_RANK[a.severity] || 0) ||
          (parseTime(b.occurred_at) || 0) - (parseTime(a.occurred_at) || 0),
      );
      rows.push({ account, alerts, worst: worstSeverity(alerts) });
    }
    const order = SORTS[state.filters.sort] || SORTS.risk;
    rows.sort(
      (a, b) =>
        order(a.account, b.account) ||
        String(a.account.account_id).localeCompare(String(b.account.account_id)),
    );
    return rows;
  }

  // ---------------------------------------------------------------- rendering

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  /**
   * Keyed update of the account list: a card is rebuilt only when its data
   * changed, and cards are moved rather than recreated, so a live update does
   * not reset the scroll position or steal the keyboard focus.
   */
  function render() {
    if (state.view) {
      renderAccountView();
      return;
    }
    const rows = visibleAccounts();
    const list = $("accounts");
    const seen = new Set();
    let previous = null;
    for (const row of rows) {
      const id = row.account.account_id;
      seen.add(id);
      const history = row.alerts.map((a) => [state.expanded.has(a.alert_id), state.audit.get(a.alert_id)]);
      const signature = JSON.stringify([row.account, row.alerts, history, state.me, state.filters.mine, canWrite()]);
      let entry = state.cards.get(id);
      if (!entry || entry.signature !== signature) {
        const el = renderAccount(row);
        if (entry) {
          const focusKey = entry.el.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
          entry.el.replaceWith(el);
          if (focusKey) {
            const target = el.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
            if (target) target.focus();
          }
        }
        entry = { el, signature };
        state.cards.set(id, entry);
      }
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== entry.el) list.insertBefore(entry.el, expected);
      previous = entry.el;
    }
    for (const [id, entry] of state.cards) {
      if (!seen.has(id)) {
        entry.el.remove();
        state.cards.delete(id);
      }
    }
    for (const alertId of state.flash) {
      const el = list.querySelector(`[data-alert-id="${CSS.escape(alertId)}"]`);
      if (el) {
        el.classList.remove("flash");
        void el.offsetWidth; // restart the animation
        el.classList.add("flash");
      }
    }
    state.flash.clear();
    $("empty").hidden = !state.loaded || rows.length > 0;
    $("load-more").hidden = !state.cursor;
    renderSummary(rows);
  }

  // ------------------------------------------------------------- account page

  /** /?account=ID[&alert=ID] (the links in Slack, webhooks, digests) or /accounts/ID. */
  function viewFromUrl() {
    const params = new URLSearchParams(location.search);
    let accountId = params.get("account");
    const match = location.pathname.match(/^\/accounts\/([^/]+)\/?$/);
    if (!accountId && match) accountId = decodeURIComponent(match[1]);
    return accountId ? { accountId, alertId: params.get("alert"), account: null, error: null } : null;
  }

  async function loadAccountView() {
    const view = state.view;
    try {
      const data = await api(`accounts/${encodeURIComponent(view.accountId)}`);
      if (view !== state.view) return;
      view.account = data;
      view.error = null;
      upsertAccount(data);
      for (const alert of data.alerts || []) {
        if (!state.expanded.has(alert.alert_id)) {
          state.expanded.add(alert.alert_id);
          loadHistory(alert.alert_id);
        }
      }
      state.loaded = true;
    } catch (error) {
      if (error.status === 401) return;
      view.error =
        error.status === 404
          ? `There is no account “${view.accountId}”, or it is not one of yours.`
          : `Could not load the account: ${error.message}`;
    }
    $("loading").hidden = true;
    render();
  }

  let viewReload = null;
  function reloadAccountViewSoon() {
    if (viewReload) return;
    viewReload = setTimeout(() => {
      viewReload = null;
      if (state.view) loadAccountView();
    }, 300);
  }

  function renderAccountView() {
    const view = state.view;
    const error = $("account-error");
    error.textContent = view.error || "";
    error.hidden = !view.error;
    const raw = view.account;
    if (!raw) return;
    const account = state.accounts.get(raw.account_id) || raw;
    const health = raw.health;
    const band = account.band || bandFor(account.score ?? 100);
    const score = fmtScore(account.score);
    document.title = `${raw.account_id} · healthstream`;
    $("account-title").textContent = raw.account_id;
    $("account-sub").textContent = [raw.csm ? `CSM ${raw.csm}` : "no CSM", raw.plan, raw.segment]
      .filter(Boolean)
      .join(" · ");
    const scoreEl = $("account-score");
    scoreEl.className = `score score-${band}`;
    scoreEl.setAttribute("aria-label", `Health score ${score} of 100, ${band} band`);
    scoreEl.replaceChildren(h("span", { class: "score-num" }, score), h("span", { class: "score-band" }, band));

    const renewal = parseTime(raw.renewal_date);
    const facts = [
      ["MRR", typeof raw.mrr === "number" ? moneyFormat.format(raw.mrr) : "unknown"],
      ["MRR at risk", typeof raw.mrr_at_risk === "number" ? moneyFormat.format(raw.mrr_at_risk) : "unknown"],
      ["Churn probability", health ? `${Math.round(health.churn_probability * 100)}%` : "unknown"],
      ["Renewal date", renewal !== null ? dateFormat.format(renewal) : "unknown"],
      ["CSM", raw.csm || "none"],
      ["Last change", raw.last_change ? timeEl(raw.last_change) : "never"],
    ];
    $("account-facts").replaceChildren(
      ...facts.map(([name, value]) => h("div", { class: "fact" }, h("dt", {}, name), h("dd", {}, value))),
    );
    renderChart($("history-chart"), raw.history || [], raw.account_id);
    const components = health ? Object.entries(health.components) : [];
    $("account-components").replaceChildren(
      ...(components.length
        ? components.map(([name, value]) =>
            h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, fmtScore(value))),
          )
        : [h("tr", {}, h("td", { class: "muted" }, "No health update yet"))]),
    );
    $("account-drivers").replaceChildren(renderDrivers(account.drivers || [], 10));

    const alerts = [...state.alerts.values()].filter((a) => a.account_id === raw.account_id);
    alerts.sort(
      (a, b) =>
        (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9) ||
        (parseTime(b.occurred_at) || 0) - (parseTime(a.occurred_at) || 0),
    );
    const list = $("account-alerts");
    const focusKey = list.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
    list.replaceChildren(
      ...(alerts.length
        ? groupRepeats(alerts).map((group) => renderAlert(group[0], group))
        : [h("li", { class: "muted" }, "No alerts for this account.")]),
    );
    if (focusKey) {
      const target = list.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
      if (target) target.focus();
    }
    if (view.alertId) {
      const target = list.querySelector(`[data-alert-id="${CSS.escape(view.alertId)}"]`);
      if (target) {
        target.classList.add("highlight");
        if (!view.scrolled) {
          view.scrolled = true;
          target.scrollIntoView({ block: "center" });
        }
      }
    }
  }

  /** Score over event time, drawn by uPlot (vendored: web/vendor/uplot). */
  function renderChart(el, history, accountId) {
    const points = history
      .map((p) => ({ t: parseTime(p.as_of), v: Number(p.score) }))
      .filter((p) => p.t !== null && Number.isFinite(p.v))
      .sort((a, b) => a.t - b.t);
    const signature = JSON.stringify(points);
    if (el.dataset.signature === signature) return;
    el.dataset.signature = signature;
    if (state.chart) {
      state.chart.destroy();
      state.chart = null;
    }
    el.replaceChildren();
    if (!points.length) {
      el.setAttribute("aria-label", `Score history for ${accountId}: none yet`);
      el.append(h("p", { class: "muted" }, "No score history yet"));
      return;
    }
    const first = Math.round(points[0].v);
    const lastScore = Math.round(points[points.length - 1].v);
    el.setAttribute(
      "aria-label",
      `Score history for ${accountId}: ${points.length} points, from ${first} to ${lastScore}`,
    );
    if (typeof window.uPlot !== "function") {
      el.append(sparkline(history, bandFor(lastScore), accountId));
      return;
    }
    const options = {
      width: Math.max(320, Math.floor(el.getBoundingClientRect().width) || 640),
      height: 240,
      scales: { x: { time: true }, y: { range: [0, 100] } },
      series: [{}, { label: "Score", stroke: "#2f6fed", width: 2, points: { show: points.length < 40 } }],
      axes: [{}, { values: (u, ticks) => ticks.map((v) => String(v)) }],
    };
    state.chart = new window.uPlot(options, [points.map((p) => p.t / 1000), points.map((p) => p.v)], el);
  }

  function renderSummary(rows) {
    const counts = { critical: 0, warning: 0, info: 0 };
    let active = 0;
    for (const row of rows) {
      for (const a of row.alerts) {
        if (a.status === "open" || a.status === "acknowledged") {
          active += 1;
          if (a.severity in counts) counts[a.severity] += 1;
        }
      }
    }
    const parts = [`${rows.length} account${rows.length === 1 ? "" : "s"}`];
    if (active) {
      const bySeverity = Object.entries(counts)
        .filter(([, n]) => n)
        .map(([sev, n]) => `${n} ${sev}`)
        .join(", ");
      parts.push(`${active} alert${active === 1 ? "" : "s"} needing action (${bySeverity})`);
    }
    // A background tab shows how many critical alerts wait.
    document.title = counts.critical ? `(${counts.critical}) At-risk accounts · healthstream` : "At-risk accounts · healthstream";
    const text = state.loaded ? parts.join(" · ") : "";
    // Only on change: the summary is a live region and must not repeat itself.
    if ($("summary").textContent !== text) $("summary").textContent = text;
  }

  function renderAccount({ account, alerts }) {
    const band = account.band || bandFor(account.score ?? 100);
    const score = fmtScore(account.score);
    const active = alerts.filter((a) => a.status === "open" || a.status === "acknowledged").length;
    const owner = account.csm ? account.csm : "no CSM";
    const titleId = `acct-${cssId(account.account_id)}`;
    return h(
      "li",
      { class: `account band-${band}`, dataset: { accountId: account.account_id } },
      h(
        "article",
        { "aria-labelledby": titleId },
        h(
          "div",
          { class: "account-head" },
          h(
            "div",
            {
              class: `score score-${band}`,
              role: "img",
              "aria-label": `Health score ${score} of 100, ${band} band`,
            },
            h("span", { class: "score-num" }, score),
            h("span", { class: "score-band" }, band),
          ),
          h(
            "div",
            { class: "account-name" },
            h(
              "h2",
              { id: titleId },
              h("a", { href: accountHref(account.account_id), class: "account-link" }, account.name || account.account_id),
            ),
            h(
              "p",
              { class: "muted" },
              h("span", { class: "csm" }, sameName(account.csm, state.me) ? `${owner} (you)` : owner),
              account.name ? ` · ${account.account_id}` : null,
              commercial(account),
              active ? ` · ${active} active alert${active === 1 ? "" : "s"}` : " · no active alerts",
            ),
          ),
          sparkline(account.history || [], band, account.account_id),
          h("div", { class: "drivers-now" }, h("p", { class: "drivers-label" }, "Drivers now"), renderDrivers(account.drivers || [])),
        ),
        alerts.length
          ? h(
              "ul",
              { class: "alerts", "aria-label": `Alerts for ${account.account_id}` },
              groupRepeats(alerts).map((group) => renderAlert(group[0], group)),
            )
          : null,
      ),
    );
  }

  const moneyFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });
  function commercial(account) {
    const parts = [account.plan, account.segment].filter(Boolean);
    if (typeof account.mrr === "number") parts.push(`${moneyFormat.format(account.mrr)} MRR`);
    if (typeof account.mrr_at_risk === "number") parts.push(`${moneyFormat.format(account.mrr_at_risk)} at risk`);
    const renewal = parseTime(account.renewal_date);
    if (renewal !== null) parts.push(`renews ${dateFormat.format(renewal)}`);
    return parts.length ? ` · ${parts.join(" · ")}` : null;
  }

  /** The page of one account: where every link the product sends lands. */
  function accountHref(accountId, alertId) {
    const params = new URLSearchParams({ account: accountId });
    if (alertId) params.set("alert", alertId);
    return `/?${params.toString()}`;
  }

  /**
   * Repeats of one reason on one account are one card with a count: three
   * "Urgent ticket past SLA" alerts are one problem. Newest first in each group;
   * groups keep the order of their newest alert.
   */
  function groupRepeats(alerts) {
    const groups = new Map();
    for (const alert of alerts) {
      const key = `${alert.reason}|${alert.status === "resolved" ? "resolved" : "active"}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(alert);
    }
    for (const group of groups.values()) {
      group.sort((a, b) => (parseTime(b.occurred_at) || 0) - (parseTime(a.occurred_at) || 0));
    }
    return [...groups.values()];
  }

  function cssId(text) {
    return String(text).replace(/[^A-Za-z0-9_-]/g, "_");
  }

  function renderDrivers(drivers, count = 3) {
    // Most damaging first: a CSM wants to know what is pulling the score down.
    const top = [...drivers]
      .sort((a, b) => (a.contribution ?? 0) - (b.contribution ?? 0))
      .slice(0, count);
    if (!top.length) return h("p", { class: "drivers muted" }, "No drivers reported yet");
    return h(
      "ul",
      { class: "drivers", "aria-label": "Top drivers" },
      top.map((d) => {
        const points = Math.round(d.contribution ?? 0);
        const sign = points > 0 ? "+" : points < 0 ? "−" : "±";
        return h(
          "li",
          { class: points < 0 ? "driver neg" : "driver pos", title: `${d.component || ""} · ${d.feature || ""}` },
          h("span", { class: "driver-pts", "aria-label": `${points} points` }, `${sign}${Math.abs(points)}`),
          h("span", { class: "driver-text" }, d.sentence || d.feature || ""),
        );
      }),
    );
  }

  /**
   * Vertical range of a sparkline: the data plus a margin, at least 30 points
   * tall, so a 15-point slide is visible while noise of 1-2 points stays flat.
   */
  function sparkRange(values) {
    let lo = Math.max(0, Math.min(...values) - 8);
    let hi = Math.min(100, Math.max(...values) + 8);
    if (hi - lo < 30) {
      const mid = (hi + lo) / 2;
      lo = Math.max(0, Math.min(mid - 15, 70));
      hi = Math.min(100, lo + 30);
    }
    return [lo, hi];
  }

  /** Inline SVG sparkline with the band thresholds (50, 75) drawn when in range. */
  function sparkline(history, band, accountId) {
    const W = 132;
    const H = 40;
    const P = 3;
    const points = history
      .map((p) => ({ t: parseTime(p.as_of), v: Number(p.score) }))
      .filter((p) => p.t !== null && Number.isFinite(p.v))
      .sort((a, b) => a.t - b.t);
    if (!points.length) {
      return h("div", { class: "spark spark-empty muted", role: "img", "aria-label": "No score history" }, "no history");
    }
    const t0 = points[0].t;
    const t1 = points[points.length - 1].t;
    const x = (t) => (t1 === t0 ? W - P : P + ((t - t0) / (t1 - t0)) * (W - 2 * P));
    const [lo, hi] = sparkRange(points.map((p) => p.v));
    const y = (v) => P + (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * (H - 2 * P);
    const inRange = (v) => v > lo && v < hi;
    const coords = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
    const first = points[0].v;
    const last = points[points.length - 1].v;
    const delta = Math.round(last - first);
    const days = Math.max(1, Math.round((t1 - t0) / 86400000));
    const label =
      points.length > 1
        ? `Score history for ${accountId}: from ${Math.round(first)} to ${Math.round(last)} over ${days} day${days === 1 ? "" : "s"}`
        : `Score history for ${accountId}: ${Math.round(last)}`;
    const svg = s(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: `spark-svg stroke-${band}`, "aria-hidden": "true", focusable: "false" },
      lo < 50 ? s("rect", { x: 0, y: y(50), width: W, height: H - y(50), class: "spark-red-zone" }) : null,
      inRange(75) ? s("line", { x1: 0, x2: W, y1: y(75), y2: y(75), class: "spark-threshold" }) : null,
      inRange(50) ? s("line", { x1: 0, x2: W, y1: y(50), y2: y(50), class: "spark-threshold" }) : null,
      points.length > 1
        ? s("polygon", {
            points: `${coords.join(" ")} ${x(t1).toFixed(1)},${H - P} ${x(t0).toFixed(1)},${H - P}`,
            class: "spark-area",
          })
        : null,
      points.length > 1 ? s("polyline", { points: coords.join(" "), class: "spark-line" }) : null,
      s("circle", { cx: x(t1).toFixed(1), cy: y(last).toFixed(1), r: 2.8, class: "spark-dot" }),
    );
    const trend =
      points.length > 1
        ? h(
            "span",
            { class: `spark-delta ${delta < 0 ? "down" : delta > 0 ? "up" : ""}` },
            delta < 0 ? `▼ ${-delta}` : delta > 0 ? `▲ ${delta}` : "■ 0",
            h("span", { class: "muted" }, ` in ${days} d`),
          )
        : h("span", { class: "spark-delta muted" }, "first score");
    return h("figure", { class: "spark", role: "img", "aria-label": label }, svg, trend);
  }

  function renderAlert(alert, group = [alert]) {
    const reason = REASON_LABEL[alert.reason] || alert.reason;
    const repeats = group.length;
    const groupIds = group.map((a) => a.alert_id).join(" ");
    const status = alert.status || "open";
    const who = alert.assigned_csm;
    const scoreText =
      typeof alert.previous_score === "number"
        ? `score ${fmtScore(alert.score)}, was ${fmtScore(alert.previous_score)}`
        : `score ${fmtScore(alert.score)}`;
    const subject = `${reason} for ${alert.account_id}`;
    const actions = [];
    const button = (action, label, cls) =>
      h(
        "button",
        {
          type: "button",
          class: cls,
          "aria-label": `${label}: ${subject}`,
          dataset: { action, alertId: alert.alert_id, groupIds, focus: `${alert.alert_id}:${action}` },
          onclick: onAction,
        },
        label,
      );
    // A read-only key gets no buttons it could only see fail (GET /v1/me says which it is).
    const writable = canWrite();
    if (writable && status === "open") actions.push(button("acknowledge", "Acknowledge", "primary small"));
    if (writable && (status === "open" || status === "acknowledged")) {
      actions.push(button("snooze", "Snooze", "small"));
    }
    if (writable && status !== "resolved") {
      actions.push(button("resolve", "Resolve", "small"));
      actions.push(button("assign", "Assign", "small ghost"));
    }
    let statusText = STATUS_LABEL[status] || status;
    if (status === "snoozed" && parseTime(alert.snoozed_until)) {
      statusText = `Snoozed until ${shortFormat.format(parseTime(alert.snoozed_until))}`;
    }
    return h(
      "li",
      {
        class: `alert status-${status} sev-${alert.severity}`,
        dataset: { alertId: alert.alert_id, status, severity: alert.severity, count: String(repeats) },
      },
      h("span", { class: `sev sev-${alert.severity}` }, alert.severity),
      h(
        "div",
        { class: "alert-main" },
        h(
          "p",
          { class: "alert-title" },
          h("strong", {}, reason),
          repeats > 1
            ? h("span", { class: "repeat-count", "aria-label": `${repeats} alerts of this kind` }, `×${repeats}`)
            : null,
          h("span", { class: "muted" }, ` · ${scoreText}`),
        ),
        alert.message ? h("p", { class: "alert-message" }, alert.message) : null,
        repeats > 1
          ? h("p", { class: "repeat-note muted" }, `${repeats} alerts, the first `, timeEl(group[repeats - 1].occurred_at))
          : null,
        alertDrivers(alert),
        h(
          "p",
          { class: "alert-meta" },
          h("span", { class: `status-chip chip-${status}` }, statusText),
          " ",
          timeEl(alert.occurred_at),
          who ? h("span", {}, ` · assigned to ${who}`) : null,
          alert.escalated_at ? h("span", { class: "escalated" }, " · escalated") : null,
          alert.note ? h("span", { class: "note" }, ` · “${alert.note}”`) : null,
          " · ",
          h(
            "button",
            {
              type: "button",
              class: "linkish",
              "aria-expanded": state.expanded.has(alert.alert_id) ? "true" : "false",
              "aria-controls": `history-${cssId(alert.alert_id)}`,
              "aria-label": `History: ${subject}`,
              dataset: { alertId: alert.alert_id, focus: `${alert.alert_id}:history` },
              onclick: onHistory,
            },
            "History",
          ),
        ),
        state.expanded.has(alert.alert_id) ? renderHistory(alert) : null,
        h("p", { class: "form-error alert-error", role: "alert", hidden: true }),
      ),
      h("div", { class: "alert-actions" }, actions),
    );
  }

  /** What the scorer said when the alert fired; the card's "Drivers now" is today's. */
  function alertDrivers(alert) {
    const drivers = [...(alert.drivers || [])]
      .sort((a, b) => (a.contribution ?? 0) - (b.contribution ?? 0))
      .slice(0, 2);
    if (!drivers.length) return null;
    return h(
      "p",
      { class: "alert-drivers muted" },
      h("span", { class: "drivers-label" }, "At the alert: "),
      drivers
        .map((d) => {
          const points = Math.round(d.contribution ?? 0);
          return `${d.sentence || d.feature} (${points > 0 ? "+" : points < 0 ? "−" : "±"}${Math.abs(points)})`;
        })
        .join(" · "),
    );
  }

  const AUDIT_LABEL = {
    created: "Raised",
    acknowledged: "Acknowledged",
    snoozed: "Snoozed",
    unsnoozed: "Snooze ended",
    resolved: "Resolved",
    assigned: "Assigned",
    escalated: "Escalated",
  };

  /** Who did what, when (GET /v1/alerts/{id}/audit): the answer to "did anyone call them?". */
  function renderHistory(alert) {
    const cached = state.audit.get(alert.alert_id);
    const id = `history-${cssId(alert.alert_id)}`;
    if (!cached || cached.items === null) {
      return h("p", { class: "audit muted", id }, cached && cached.error ? cached.error : "Loading history…");
    }
    return h(
      "ol",
      { class: "audit", id, "aria-label": "Alert history" },
      cached.items.map((entry) => {
        const details = entry.details || {};
        const extra = [];
        if (entry.action === "assigned") extra.push(` from ${details.from || "nobody"} to ${details.to || "nobody"}`);
        if (entry.action === "escalated" && details.to) extra.push(` to ${details.to}`);
        if (details.until && parseTime(details.until)) extra.push(` until ${absoluteFormat.format(parseTime(details.until))}`);
        if (details.note) extra.push(`: “${details.note}”`);
        if (details.cause) extra.push(`: ${details.cause}`);
        return h(
          "li",
          {},
          h("strong", {}, AUDIT_LABEL[entry.action] || entry.action),
          extra.join(""),
          h("span", { class: "muted" }, ` · ${entry.actor} · `),
          timeEl(entry.at),
        );
      }),
    );
  }

  async function onHistory(event) {
    const alertId = event.currentTarget.dataset.alertId;
    if (state.expanded.has(alertId)) {
      state.expanded.delete(alertId);
      render();
      return;
    }
    state.expanded.add(alertId);
    await loadHistory(alertId);
  }

  async function loadHistory(alertId) {
    const alert = state.alerts.get(alertId);
    const version = alert ? alert.updated_at : null;
    const cached = state.audit.get(alertId);
    if (cached && cached.version === version && cached.items !== null) {
      render();
      return;
    }
    state.audit.set(alertId, { version, items: null, error: null });
    render();
    try {
      const data = await api(`alerts/${encodeURIComponent(alertId)}/audit`);
      state.audit.set(alertId, { version, items: itemsOf(data), error: null });
    } catch (error) {
      state.audit.set(alertId, { version, items: null, error: `History unavailable: ${error.message}` });
    }
    render();
  }

  setInterval(() => {
    for (const el of document.querySelectorAll("time[data-ts]")) {
      el.textContent = relativeTime(Number(el.dataset.ts));
    }
  }, 30000);

  // Scores also move without an alert (the stream carries alerts only): refresh
  // quietly once a minute while the page is visible.
  setInterval(() => {
    if (state.key && state.loaded && document.visibilityState === "visible" && !$("action-dialog").open) {
      loadAll({ quiet: true });
    }
  }, 60000);

  // ------------------------------------------------------------------ actions

  function alertRowError(alertId, message) {
    const row = document.querySelector(`[data-alert-id="${CSS.escape(alertId)}"] .alert-error`);
    if (row) {
      row.textContent = message;
      row.hidden = !message;
    } else if (message) {
      toast(message, "error");
    }
  }

  async function perform(alertId, action, body) {
    state.ownActions.set(alertId, Date.now());
    const updated = await api(`alerts/${encodeURIComponent(alertId)}/${action}`, {
      method: "POST",
      body: body || {},
    });
    if (updated && updated.alert_id) {
      upsertAlert(updated);
    } else {
      upsertAlert(await api(`alerts/${encodeURIComponent(alertId)}`));
    }
    state.flash.add(alertId);
    if (state.expanded.has(alertId)) loadHistory(alertId);
    render();
  }

  function explain(error) {
    if (error.status === 403) return "Your API key may not change alerts (it needs alerts:write).";
    if (error.status === 404) return "This alert no longer exists or is not yours.";
    if (error.status === 409) return `Not possible right now: ${error.message}`;
    return error.message;
  }

  /** An action on a grouped card applies to every alert of the group. */
  async function performAll(alertIds, action, body) {
    for (const alertId of alertIds) await perform(alertId, action, body);
  }

  function idsOf(button) {
    return (button.dataset.groupIds || button.dataset.alertId).split(" ").filter(Boolean);
  }

  async function onAction(event) {
    const button = event.currentTarget;
    const { action, alertId } = button.dataset;
    const alert = state.alerts.get(alertId);
    if (!alert) return;
    const ids = idsOf(button);
    if (action !== "acknowledge") {
      openDialog(action, alert, ids);
      return;
    }
    button.disabled = true;
    button.textContent = "Acknowledging…";
    alertRowError(alertId, "");
    try {
      await performAll(ids.filter((id) => (state.alerts.get(id) || {}).status === "open"), "acknowledge");
      announce(`Acknowledged: ${REASON_LABEL[alert.reason] || alert.reason} for ${alert.account_id}`);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Acknowledge";
      alertRowError(alertId, explain(error));
    }
  }

  function toLocalInput(ms) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  function nextMorning(daysAhead) {
    const d = new Date();
    d.setDate(d.getDate() + daysAhead);
    d.setHours(9, 0, 0, 0);
    return d.getTime();
  }

  let dialogState = null;

  function openDialog(action, alert, ids = [alert.alert_id]) {
    const dialog = $("action-dialog");
    const fields = $("action-fields");
    fields.replaceChildren();
    $("action-error").hidden = true;
    const reason = REASON_LABEL[alert.reason] || alert.reason;
    $("action-context").textContent = `${alert.account_id} · ${reason} (${alert.severity})`;
    if (action === "snooze") {
      $("action-title").textContent = "Snooze alert";
      $("action-submit").textContent = "Snooze";
      const input = h("input", {
        id: "snooze-until",
        name: "until",
        type: "datetime-local",
        required: true,
        value: toLocalInput(nextMorning(1)),
        min: toLocalInput(Date.now()),
      });
      const preset = (label, ms) =>
        h("button", { type: "button", class: "chip-button", onclick: () => (input.value = toLocalInput(ms())) }, label);
      fields.append(
        h("label", { for: "snooze-until" }, "Snooze until"),
        input,
        h(
          "div",
          { class: "presets", role: "group", "aria-label": "Quick choices" },
          preset("1 hour", () => Date.now() + 3600000),
          preset("4 hours", () => Date.now() + 4 * 3600000),
          preset("Tomorrow 9:00", () => nextMorning(1)),
          preset("Next week", () => nextMorning(7)),
        ),
      );
    } else if (action === "resolve") {
      $("action-title").textContent = "Resolve alert";
      $("action-submit").textContent = "Resolve";
      fields.append(
        h("label", { for: "resolve-note" }, "What was done"),
        h("textarea", {
          id: "resolve-note",
          name: "note",
          rows: 3,
          required: true,
          maxlength: 2000,
          placeholder: "e.g. Called the champion; payment method updated.",
        }),
      );
    } else if (action === "assign") {
      $("action-title").textContent = "Assign alert";
      $("action-submit").textContent = "Assign";
      // The server accepts only known CSMs (GET /v1/me says which).
      const known = new Set((state.identity && state.identity.assignable) || []);
      fields.append(
        h("label", { for: "assign-csm" }, "Assign to CSM"),
        h("input", {
          id: "assign-csm",
          name: "csm",
          type: "text",
          required: true,
          list: "known-csms",
          spellcheck: "false",
          value: alert.assigned_csm || state.me || "",
        }),
        h("datalist", { id: "known-csms" }, [...known].sort().map((name) => h("option", { value: name }))),
      );
    }
    dialogState = { action, alertId: alert.alert_id, ids, opener: document.activeElement };
    dialog.showModal();
    const first = fields.querySelector("input, textarea");
    if (first) first.focus();
  }

  function closeDialog() {
    const dialog = $("action-dialog");
    if (dialog.open) dialog.close();
  }

  async function submitDialog(event) {
    event.preventDefault();
    if (!dialogState) return;
    const { action, alertId, ids } = dialogState;
    const form = $("action-form");
    if (!form.reportValidity()) return;
    let body;
    if (action === "snooze") {
      const ms = Date.parse(form.elements.until.value);
      if (!Number.isFinite(ms) || ms <= Date.now()) {
        showDialogError("Pick a time in the future.");
        return;
      }
      body = { until: new Date(ms).toISOString() };
    } else if (action === "resolve") {
      body = { note: form.elements.note.value.trim() };
    } else if (action === "assign") {
      body = { csm: form.elements.csm.value.trim() };
    }
    const submit = $("action-submit");
    submit.disabled = true;
    try {
      await performAll(ids, action, body);
      const alert = state.alerts.get(alertId);
      const done = { snooze: "Snoozed", resolve: "Resolved", assign: "Assigned" }[action];
      announce(`${done}: ${REASON_LABEL[alert.reason] || alert.reason} for ${alert.account_id}`);
      closeDialog();
    } catch (error) {
      showDialogError(explain(error));
    } finally {
      submit.disabled = false;
    }
  }

  function showDialogError(message) {
    const el = $("action-error");
    el.textContent = message;
    el.hidden = false;
  }

  // ---------------------------------------------------------------- live feed

  function setConnection(kind) {
    const el = $("connection");
    el.dataset.state = kind;
    el.querySelector(".connection-text").textContent =
      { live: "Live", reconnecting: "Reconnecting…", offline: "Offline" }[kind] || kind;
  }

  function connectStream() {
    if (state.source) state.source.close();
    if (!state.key) return;
    const url = new URL("stream", API);
    url.searchParams.set("api_key", state.key);
    const view = chosenView();
    if (view) url.searchParams.set("view", view);
    const source = new EventSource(url);
    state.source = source;
    source.addEventListener("open", () => {
      setConnection("live");
      state.streamRetry = 1000;
      // Anything that happened while we were disconnected is fetched again.
      if (state.everDisconnected) loadAll();
    });
    source.addEventListener("error", () => {
      state.everDisconnected = true;
      if (source.readyState === EventSource.CLOSED) {
        setConnection("offline");
        const delay = state.streamRetry;
        state.streamRetry = Math.min(30000, state.streamRetry * 2);
        setTimeout(() => {
          if (state.source === source) connectStream();
        }, delay);
      } else {
        setConnection("reconnecting");
      }
    });
    const onAlert = (event) => {
      try {
        onStreamAlert(JSON.parse(event.data));
      } catch {
        /* a malformed frame must not stop the feed */
      }
    };
    source.addEventListener("alert", onAlert);
    source.addEventListener("message", onAlert);
    source.addEventListener("account", (event) => {
      try {
        upsertAccount(JSON.parse(event.data));
        scheduleRender();
      } catch {
        /* ignore */
      }
    });
  }

  function onStreamAlert(payload) {
    const alert = payload && payload.alert_id ? payload : payload && payload.alert;
    if (!alert || !alert.alert_id) return;
    const previous = state.alerts.get(alert.alert_id);
    const isNew = !previous;
    state.streamed.set(alert.alert_id, Date.now());
    if (!upsertAlert(alert)) return;
    if (state.view && alert.account_id === state.view.accountId) {
      state.expanded.add(alert.alert_id);
      reloadAccountViewSoon();
    }
    if (state.expanded.has(alert.alert_id)) loadHistory(alert.alert_id);
    const current = state.alerts.get(alert.alert_id);
    state.flash.add(alert.alert_id);
    scheduleRender();
    const mine = Date.now() - (state.ownActions.get(alert.alert_id) || 0) < 10000;
    if (!alertMatches(current) || mine) return;
    const reason = REASON_LABEL[current.reason] || current.reason;
    if (isNew) {
      toast(`New ${current.severity} alert · ${current.account_id}: ${reason}`, current.severity);
    } else if (previous.status !== current.status) {
      announce(`${current.account_id}: ${reason} is now ${current.status}`);
    }
  }

  // ------------------------------------------------------- messages and toasts

  function toast(text, kind = "info") {
    const el = h("div", { class: `toast toast-${kind}` }, text);
    $("toasts").append(el);
    setTimeout(() => el.classList.add("leaving"), 4500);
    setTimeout(() => el.remove(), 5100);
  }

  /** Spoken by screen readers through the polite live region, shown briefly. */
  function announce(text) {
    toast(text, "ok");
  }

  function showBanner(text) {
    const el = $("banner");
    el.textContent = text;
    el.hidden = false;
  }

  // ------------------------------------------------------------ key and setup

  /** Until GET /v1/me answered, assume the key may write (the server checks anyway). */
  function canWrite() {
    return !state.identity || !!state.identity.can_write;
  }

  function renderWhoami() {
    const el = $("whoami");
    const me = state.identity;
    el.replaceChildren();
    if (!me) return;
    const badges = [];
    if (me.admin) badges.push(h("span", { class: "role-badge" }, "Admin"));
    else if (!me.can_write) badges.push(h("span", { class: "role-badge read-only" }, "Read only"));
    el.append("Signed in as ", h("strong", {}, me.csm || me.actor), ...badges);
    el.title = `Scopes: ${me.scopes.join(", ")}${me.sees_all_accounts ? "" : ` · only ${me.csm}'s accounts`}`;
  }

  /** Who the key is: name in the top bar, "My accounts" without typing, buttons it may use. */
  async function loadIdentity() {
    const key = state.key;
    try {
      const me = await api("me");
      if (key !== state.key) return; // the key changed meanwhile
      state.identity = me;
      state.meFromServer = !!me.csm;
      if (me.csm) state.me = me.csm;
      document.dispatchEvent(new CustomEvent("healthstream:identity", { detail: me }));
    } catch (error) {
      if (error.status === 401 || key !== state.key) return; // askForKey took over
      state.identity = null; // an older service without /v1/me: behave as before
    }
    renderWhoami();
    syncFilterControls();
    render();
  }

  function askForKey(message) {
    if (state.source) state.source.close();
    state.source = null;
    if (message) localStorage.removeItem(KEY_STORAGE); // a rejected key is useless on reload too
    state.key = null;
    state.identity = null;
    if (state.meFromServer) state.me = null;
    state.meFromServer = false;
    renderWhoami();
    setConnection("offline");
    $("main").hidden = true;
    $("change-key").hidden = true;
    $("key-panel").hidden = false;
    const error = $("key-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("key-input").value = "";
    $("key-input").focus();
  }

  function takeKeyFromUrl() {
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    const key = hash.get("key");
    if (!key) return;
    localStorage.setItem(KEY_STORAGE, key);
    hash.delete("key");
    // Keep the secret out of the address bar, history and screenshots.
    const rest = hash.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }

  function start() {
    state.key = localStorage.getItem(KEY_STORAGE);
    if (!state.key) {
      askForKey();
      return;
    }
    $("key-panel").hidden = true;
    $("main").hidden = false;
    $("change-key").hidden = false;
    state.view = viewFromUrl();
    for (const id of ["filters", "accounts", "load-more", "empty"]) if (state.view) $(id).hidden = true;
    $("filters").hidden = !!state.view;
    $("account-view").hidden = !state.view;
    state.alerts.clear();
    state.accounts.clear();
    state.cursor = null;
    state.requestedAccounts.clear();
    syncFilterControls();
    loadIdentity();
    loadAll();
    connectStream();
  }

  function syncFilterControls() {
    const f = state.filters;
    $("filter-severity").value = f.severity;
    $("filter-status").value = f.status;
    $("filter-mine").checked = f.mine;
    $("filter-text").value = f.text;
    $("filter-sort").value = SORTS[f.sort] ? f.sort : "risk";
    $("me-input").value = state.me || "";
    $("me-field").hidden = !f.mine || state.meFromServer;
  }

  function onFiltersChanged(event) {
    const f = state.filters;
    const before = `${f.severity}|${f.status}`;
    f.severity = $("filter-severity").value;
    f.status = $("filter-status").value;
    f.mine = $("filter-mine").checked;
    f.text = $("filter-text").value;
    f.sort = $("filter-sort").value;
    if (!state.meFromServer) state.me = $("me-input").value.trim() || null;
    $("me-field").hidden = !f.mine || state.meFromServer;
    if (event && event.target === $("filter-mine") && f.mine && !state.me) $("me-input").focus();
    savePrefs();
    // Severity and status are filtered by the server; the rest locally.
    if (`${f.severity}|${f.status}` !== before) {
      state.cursor = null;
      loadAll();
    } else {
      render();
    }
  }

  function init() {
    loadPrefs();
    syncFilterControls();
    takeKeyFromUrl();
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      localStorage.setItem(KEY_STORAGE, key);
      start();
    });
    $("change-key").addEventListener("click", () => {
      localStorage.removeItem(KEY_STORAGE);
      state.key = null;
      askForKey();
    });
    const filters = $("filters");
    filters.addEventListener("change", onFiltersChanged);
    filters.addEventListener("input", (event) => {
      if (event.target.type === "search" || event.target.type === "text") onFiltersChanged(event);
    });
    filters.addEventListener("submit", (event) => event.preventDefault());
    $("refresh").addEventListener("click", () => loadAll());
    $("load-more").addEventListener("click", loadMore);
    $("action-form").addEventListener("submit", submitDialog);
    $("action-cancel").addEventListener("click", closeDialog);
    $("action-dialog").addEventListener("close", () => {
      const opener = dialogState && dialogState.opener;
      dialogState = null;
      if (opener && document.contains(opener)) opener.focus();
    });
    window.addEventListener("hashchange", () => {
      if (location.hash.includes("key=")) {
        takeKeyFromUrl();
        start();
      }
    });
    start();
  }

  // Other modules (teams.js) change what the API is asked and reload through this.
  window.healthstreamReload = () => {
    connectStream();
    loadAll();
  };
  init();
})();
