// fastfix web blotter: REST for orders, the WebSocket stream for their reports.
//
// Start-up: GET /stream-info (where the stream listens), GET /v1/brokers (checks the
// key), open the stream live, then take today's orders from GET /v1/orders; reports
// that arrive meanwhile are applied after that snapshot. On a dropped connection the
// page reconnects with since=<last seq received>, so nothing is missed or doubled.
"use strict";

(() => {
  const KEY_STORE = "fastfix.blotter.apiKey";
  const STATUS = {
    "0": "New", "1": "Partially filled", "2": "Filled", "3": "Done for day", "4": "Canceled",
    "5": "Replaced", "6": "Pending cancel", "7": "Stopped", "8": "Rejected", "9": "Suspended",
    "A": "Pending new", "B": "Calculated", "C": "Expired", "D": "Accepted for bidding",
    "E": "Pending replace",
  };
  const TERMINAL = new Set(["2", "3", "4", "5", "8", "C"]);
  const SIDES = { "1": "Buy", "2": "Sell", "5": "Sell short" };
  // KRX order types as FIX carries them (the gateway's dictionary decides which exist).
  const ORDER_TYPES = [
    { id: "2", OrdType: "2", label: "Limit", priced: true, conditions: true },
    { id: "1", OrdType: "1", label: "Market", priced: false, conditions: true },
    { id: "I", OrdType: "I", label: "Conditional limit", priced: true, conditions: false },
    { id: "K", OrdType: "K", label: "Best limit", priced: false, conditions: true },
    { id: "P-P", OrdType: "P", ExecInst: "P", label: "Best limit (pegged)", priced: false, conditions: true, fallbackFor: "K" },
    { id: "P-R", OrdType: "P", ExecInst: "R", label: "Primary best", priced: false, conditions: false },
  ];
  const TYPE_NAMES = { "1": "Market", "2": "Limit", "I": "Cond. limit", "K": "Best limit", "P": "Pegged" };
  const FIELD_INPUTS = {
    Symbol: "symbol", OrderQty: "qty", Price: "price", OrdType: "ordtype", TimeInForce: "tif",
    DeliverToCompID: "broker", Account: "account", ExecInst: "ordtype",
  };
  const MAX_SNAPSHOT_PAGES = 10;
  const MAX_FILL_DETAILS = 50;
  const MAX_FILLS_SHOWN = 500;

  const $ = (id) => document.getElementById(id);

  const S = {
    key: "",
    gen: 0, // bumped on every (re)connect from the key bar: stale callbacks check it
    wsPort: null,
    wsPath: "/v1/stream",
    ws: null,
    lastSeq: null, // last stream sequence number applied; null = no cursor yet
    retry: 0,
    retryTimer: null,
    buffering: false,
    buffer: [],
    orders: new Map(),
    fills: [],
    fillIds: new Set(),
    brokers: [],
    ordTypes: ORDER_TYPES,
    renderQueued: false,
    flash: new Set(),
    idSeq: 0,
  };

  // ---------------------------------------------------------------- helpers
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k in node) node[k] = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmtNum(value) {
    if (value === undefined || value === null || value === "") return "";
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    return n.toLocaleString("en-US", { maximumFractionDigits: 4 });
  }

  function fmtTime(value) {
    if (!value) return "";
    // FIX UTCTimestamp (20240102-09:00:00.000) or ISO 8601
    let s = String(value);
    const m = /^(\d{4})(\d{2})(\d{2})-(\d{2}:\d{2}:\d{2}(?:\.\d+)?)$/.exec(s);
    if (m) s = `${m[1]}-${m[2]}-${m[3]}T${m[4]}Z`;
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(value);
    return d.toLocaleTimeString("en-GB", { hour12: false });
  }

  function krxTick(price) {
    const bounds = [[2000, 1], [5000, 5], [20000, 10], [50000, 50], [200000, 100], [500000, 500]];
    for (const [bound, tick] of bounds) if (price < bound) return tick;
    return 1000;
  }

  function newClOrdID() {
    // Unique per browser tab without coordination: time base36 + random + counter.
    S.idSeq += 1;
    const rnd = Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, "0");
    return `W${Date.now().toString(36)}${rnd}${S.idSeq.toString(36)}`.toUpperCase();
  }

  function symbolName(code) {
    const opt = document.querySelector(`#symbols option[value="${CSS.escape(code || "")}"]`);
    return opt ? opt.textContent : "";
  }

  class ApiError extends Error {
    constructor(status, code, message, errors) {
      super(message);
      this.status = status;
      this.code = code;
      this.errors = errors || [];
    }
  }

  async function api(method, path, body) {
    const opts = { method, headers: { "X-API-Key": S.key } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, "unreachable", `gateway unreachable (${e.message})`, []);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      let message = (data && data.message) || res.statusText || "request failed";
      const retry = res.headers.get("retry-after");
      if (retry) message += ` (retry after ${retry}s)`;
      throw new ApiError(res.status, (data && data.error) || `http_${res.status}`, message,
        (data && data.errors) || []);
    }
    return data;
  }

  // ------------------------------------------------------------- error display
  function errorContent(title, err) {
    const frag = document.createDocumentFragment();
    const status = err instanceof ApiError && err.status ? ` (${err.status} ${err.code})` : "";
    frag.append(el("div", { class: "title", text: `${title}${status}` }));
    frag.append(el("div", { class: "message", text: err.message }));
    if (err.errors && err.errors.length) {
      const list = el("ul", { class: "errors" });
      for (const p of err.errors) {
        list.append(el("li", { "data-field": p.field },
          el("code", { text: p.field }), " ", p.reason,
          p.path ? el("span", { class: "muted", text: ` (${p.path})` }) : null));
      }
      frag.append(list);
    }
    return frag;
  }

  function notice(kind, content, timeoutMs) {
    const body = el("div", { class: "body" });
    if (typeof content === "string") body.textContent = content; else body.append(content);
    const box = el("div", { class: `notice ${kind}` }, body);
    box.append(el("button", { class: "close", type: "button", title: "Dismiss", text: "×", onclick: () => box.remove() }));
    const area = $("notices");
    area.prepend(box);
    while (area.children.length > 5) area.lastElementChild.remove();
    if (timeoutMs) setTimeout(() => box.remove(), timeoutMs);
  }

  function setConn(state, text) {
    $("conn").dataset.state = state;
    $("conn-text").textContent = text;
    $("conn-seq").textContent = S.lastSeq !== null ? `seq ${S.lastSeq}` : "";
  }

  // -------------------------------------------------------------- orders model
  // ``fromRest``: ``view`` is the gateway's whole view of the order, which leaves
  // ``pending`` out when no cancel or replace is in flight.
  function upsertOrder(view, fromRest = false) {
    const prev = S.orders.get(view.ClOrdID) || {};
    if (fromRest && TERMINAL.has(prev.OrdStatus) && !TERMINAL.has(view.OrdStatus)) {
      // A REST answer written before a report that the stream delivered first (the
      // cancel's answer after its Canceled report): the order does not leave a final state.
      view = { ...view };
      for (const k of ["OrdStatus", "state", "CumQty", "LeavesQty", "AvgPx", "pending"]) delete view[k];
    }
    const next = { ...prev, ...view };
    if (fromRest && !("pending" in view)) delete next.pending;
    S.orders.set(view.ClOrdID, next);
    if (!S.buffering) S.flash.add(view.ClOrdID); // highlight changes, not the initial load
    scheduleRender();
    return next;
  }

  const refreshing = new Set();
  async function refreshOrder(cl) {
    if (!cl || refreshing.has(cl)) return;
    refreshing.add(cl);
    const gen = S.gen;
    try {
      const view = await api("GET", `/v1/orders/${encodeURIComponent(cl)}`);
      if (gen !== S.gen) return;
      const executions = view.executions || [];
      delete view.executions;
      upsertOrder(view, true);
      for (const e of executions) addFill(view, e, e.received);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) console.warn("refresh", cl, err);
    } finally {
      refreshing.delete(cl);
    }
  }

  function addFill(order, e, ts) {
    const qty = Number(e.LastQty || 0);
    const isTrade = ["F", "1", "2"].includes(e.ExecType);
    if (!isTrade || !(qty > 0) || !e.ExecID || S.fillIds.has(e.ExecID)) return;
    S.fillIds.add(e.ExecID);
    S.fills.push({
      time: e.TransactTime || ts, ClOrdID: order.ClOrdID, broker: order.broker, Symbol: order.Symbol,
      Side: order.Side, LastQty: e.LastQty, LastPx: e.LastPx, ExecID: e.ExecID,
      sortKey: ts || e.TransactTime || "",
    });
    if (S.fills.length > MAX_FILLS_SHOWN) {
      const dropped = S.fills.splice(0, S.fills.length - MAX_FILLS_SHOWN);
      for (const f of dropped) S.fillIds.delete(f.ExecID);
    }
    scheduleRender();
  }

  function num(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n : null;
  }

  // One ExecutionReport from the stream. The gateway is the authority on order state;
  // this applies the same forward-only rules so the row moves at once, and asks REST
  // for the order whenever the report alone cannot say (unknown order, replacement).
  function applyExecutionReport(body, header, ts) {
    const cl = body.ClOrdID;
    const orig = body.OrigClOrdID;
    const execType = body.ExecType;
    let order = S.orders.get(cl);
    if (execType === "5" && orig) {
      const old = S.orders.get(orig);
      if (old && !TERMINAL.has(old.OrdStatus)) {
        upsertOrder({ ClOrdID: orig, OrdStatus: "5", state: "Replaced", LeavesQty: "0", pending: undefined, ReplacedBy: cl });
      }
      refreshOrder(cl);
      refreshOrder(orig);
      if (!order) return;
    }
    if (!order && orig && S.orders.has(orig)) order = S.orders.get(orig); // cancel requests have their own ClOrdID
    if (!order) {
      refreshOrder(cl);
      if (orig) refreshOrder(orig);
      return;
    }
    if (body.ExecID && (order.execIds || []).includes(body.ExecID)) return;
    const upd = { ClOrdID: order.ClOrdID };
    if (body.ExecID) upd.execIds = [...(order.execIds || []), body.ExecID].slice(-50);
    if (body.OrderID && body.OrderID !== "NONE") upd.OrderID = body.OrderID;
    const cumNow = num(order.CumQty) || 0;
    const cumEr = num(body.CumQty);
    const stale = cumEr !== null && cumEr < cumNow && !["G", "H"].includes(execType);
    if (!stale) {
      for (const k of ["CumQty", "LeavesQty", "AvgPx"]) if (body[k] !== undefined) upd[k] = body[k];
      let status = body.OrdStatus;
      if (status === "5") status = cumEr ? "1" : "0"; // FIX 4.2 reports the replacement as 5
      const terminal = TERMINAL.has(order.OrdStatus);
      if (status && (!terminal || (status === "2" && order.OrdStatus !== "2"))) {
        upd.OrdStatus = status;
        upd.state = STATUS[status] || status;
      }
      if (TERMINAL.has(upd.OrdStatus || order.OrdStatus)) upd.pending = undefined;
      if (["4", "8", "C"].includes(upd.OrdStatus)) upd.LeavesQty = "0";
    }
    if (body.Text) upd.Text = body.Text;
    const next = upsertOrder(upd);
    if (upd.pending === undefined && TERMINAL.has(next.OrdStatus)) delete next.pending;
    addFill(next, body, ts || (header && header.SendingTime));
    if (order.pending && !TERMINAL.has(next.OrdStatus) && !["6", "E"].includes(next.OrdStatus)) refreshOrder(order.ClOrdID);
  }

  function applyMessage(message, ts) {
    const header = message.Header || {};
    const body = message.Body || {};
    switch (header.MsgType) {
      case "8":
        applyExecutionReport(body, header, ts);
        break;
      case "9": {
        const what = body.CxlRejResponseTo === "2" ? "Replace" : "Cancel";
        notice("error", `${what} of ${body.OrigClOrdID || body.ClOrdID} refused by ${header.OnBehalfOfCompID || "the broker"}${body.Text ? `: ${body.Text}` : ""}`);
        refreshOrder(body.OrigClOrdID);
        if (body.CxlRejResponseTo === "2") refreshOrder(body.ClOrdID);
        break;
      }
      case "j":
        notice("error", `Business reject${body.BusinessRejectRefID ? ` of ${body.BusinessRejectRefID}` : ""}: ${body.Text || `reason ${body.BusinessRejectReason}`}`);
        refreshOrder(body.BusinessRejectRefID);
        break;
      case "N":
        for (const o of body.NoOrders || []) refreshOrder(o.ClOrdID);
        if (body.ListOrderStatus === "7") notice("error", `List ${body.ListID}: ${body.ListStatusText || "refused"}`);
        break;
      case "3":
        notice("error", `Rejected by the hub: ${body.Text || `reason ${body.SessionRejectReason}`}`);
        break;
      case "r":
        notice("info", `Mass cancel ${body.ClOrdID}: ${body.TotalAffectedOrders || 0} order(s) cancelled${body.Text ? ` (${body.Text})` : ""}`);
        break;
      case "h":
        applySessionStatus(body, header);
        break;
      default:
        break;
    }
  }

  // ------------------------------------------------- market and account panel
  const SESSION_STATUS = { "1": "halted", "2": "open", "3": "closed", "4": "pre-open", "5": "pre-close",
    "6": "rejected" };

  function applyGatewayEvent(ev) {
    if (!ev) return;
    if (ev.event === "cancel_on_disconnect") {
      notice("error", `Cancel on disconnect: ${(ev.ClOrdID || []).length} order(s) cancelled`);
      for (const cl of ev.ClOrdID || []) refreshOrder(cl);
    } else if (ev.event === "stream_lost") {
      notice("info", `A stream of this client closed; cancel on disconnect in ${ev.grace_seconds}s`);
    }
  }

  function applySessionStatus(body, header) {
    const what = `${body.TradingSessionID || ""} ${SESSION_STATUS[body.TradSesStatus] || body.TradSesStatus || ""}` +
      `${body.TradingSessionSubID ? ` (${body.TradingSessionSubID})` : ""}`;
    if (body.Symbol) {
      const row = document.querySelector(`#instruments tr[data-symbol="${body.Symbol}"] .session`);
      if (row) row.textContent = what;
      notice("info", `${body.Symbol}: ${what}${body.Text ? ` — ${body.Text}` : ""}`);
    } else {
      $("session-state").textContent = `${what} via ${header.OnBehalfOfCompID || "broker"}`;
    }
  }

  async function loadMarket() {
    const broker = $("broker").value;
    if (!broker) return;
    const q = `?broker=${encodeURIComponent(broker)}`;
    try {
      const data = await api("GET", `/v1/instruments${q}`);
      const rows = (data.instruments || []).map((i) => el("tr", { "data-symbol": i.Symbol },
        el("td", {}, i.Symbol, el("span", { class: "sym-name", text: i.name || "" })),
        el("td", { text: i.market || "" }),
        el("td", { class: "num", text: fmtNum(i.base_price) }),
        el("td", { class: "num", text: fmtNum(i.tick_size) }),
        el("td", { class: "num", text: i.lower_limit ? `${fmtNum(i.lower_limit)} – ${fmtNum(i.upper_limit)}` : "" }),
        el("td", { class: "session", text: i.session ? `${SESSION_STATUS[i.session.TradSesStatus] || ""} ${i.session.TradingSessionSubID || ""}`
          : (i.TradingSessionSubID || "") })));
      $("instruments").querySelector("tbody").replaceChildren(...rows);
      $("instruments-source").textContent = data.fallback_reason ? `static list (${data.fallback_reason})` : "from the exchange";
    } catch (err) {
      $("instruments-source").textContent = err.message;
    }
    const account = $("account").value.trim();
    if (!account) {
      $("positions-state").textContent = "enter an account in the ticket";
      return;
    }
    try {
      const pos = await api("GET", `/v1/accounts/${encodeURIComponent(account)}/positions${q}`);
      const rows = (pos.PositionReports || []).map((p) => el("tr", {},
        el("td", { text: p.Symbol || "" }),
        el("td", { class: "num", text: fmtNum(((p.NoPositions || [])[0] || {}).LongQty) }),
        el("td", { class: "num", text: fmtNum(p.SettlPrice) }),
        el("td", { class: "num", text: fmtNum(((p.NoPosAmt || [])[0] || {}).PosAmt) })));
      $("positions").querySelector("tbody").replaceChildren(...rows);
      const bal = (await api("GET", `/v1/accounts/${encodeURIComponent(account)}/balance${q}`)).CollateralReport || {};
      $("positions-state").textContent = `${account}: cash ${fmtNum(bal.EndCash)}, buying power ${fmtNum(bal.MarginExcess)}, held by orders ${fmtNum(bal.CashOutstanding)}`;
    } catch (err) {
      $("positions-state").textContent = `${account}: ${err.message}`;
    }
  }

  // --------------------------------------------------------------- rendering
  function scheduleRender() {
    if (S.renderQueued) return;
    S.renderQueued = true;
    requestAnimationFrame(() => {
      S.renderQueued = false;
      renderOrders();
      renderFills();
    });
  }

  function renderOrders() {
    const openOnly = $("open-only").checked;
    const rows = [...S.orders.values()]
      .filter((o) => !openOnly || !TERMINAL.has(o.OrdStatus))
      .sort((a, b) => (b.created || "").localeCompare(a.created || "") || b.ClOrdID.localeCompare(a.ClOrdID));
    const tbody = $("orders").tBodies[0];
    const frag = document.createDocumentFragment();
    for (const o of rows) frag.append(orderRow(o));
    tbody.replaceChildren(frag);
    S.flash.clear();
    const open = [...S.orders.values()].filter((o) => !TERMINAL.has(o.OrdStatus)).length;
    $("order-count").textContent = S.orders.size ? `${S.orders.size} orders, ${open} open` : "";
    $("orders-empty").hidden = rows.length > 0;
  }

  function orderRow(o) {
    const closed = TERMINAL.has(o.OrdStatus);
    const tr = el("tr", {
      "data-clordid": o.ClOrdID, "data-status": STATUS[o.OrdStatus] || o.OrdStatus,
      class: [closed ? "closed" : "", S.flash.has(o.ClOrdID) ? "flash" : ""].join(" ").trim() || null,
    });
    const statusCell = el("td", { class: "status-cell" },
      el("span", { class: "status", "data-code": o.OrdStatus, text: STATUS[o.OrdStatus] || o.state || o.OrdStatus }));
    if (o.pending) statusCell.append(el("span", { class: "pending", text: `${o.pending} pending` }));
    if (o.Text && (o.OrdStatus === "8" || o.pending === undefined)) {
      if (o.OrdStatus === "8") statusCell.append(el("span", { class: "why", text: o.Text }));
    }
    const name = symbolName(o.Symbol);
    const actions = el("td", { class: "actions" });
    if (!closed) {
      actions.append(
        el("button", { type: "button", class: "cancel", text: "Cancel", disabled: Boolean(o.pending), onclick: () => cancelOrder(o.ClOrdID) }),
        el("button", { type: "button", class: "replace", text: "Replace", disabled: Boolean(o.pending), onclick: () => replaceOrder(o.ClOrdID) }),
      );
    }
    tr.append(
      el("td", { text: fmtTime(o.created) }),
      el("td", { class: "id", text: o.ClOrdID, title: o.OrigClOrdID ? `replaces ${o.OrigClOrdID}` : (o.ReplacedBy ? `replaced by ${o.ReplacedBy}` : null) }),
      el("td", { text: o.broker || "" }),
      el("td", {}, o.Symbol || "", name ? el("span", { class: "sym-name", text: name }) : null),
      el("td", { class: `side-${o.Side}`, text: SIDES[o.Side] || o.Side || "" }),
      el("td", { text: TYPE_NAMES[o.OrdType] || o.OrdType || "" }),
      el("td", { class: "num qty", text: fmtNum(o.OrderQty) }),
      el("td", { class: "num price", text: fmtNum(o.Price) }),
      statusCell,
      el("td", { class: "num cumqty", text: fmtNum(o.CumQty) }),
      el("td", { class: "num leavesqty", text: fmtNum(o.LeavesQty) }),
      el("td", { class: "num avgpx", text: fmtNum(o.AvgPx) }),
      actions,
    );
    return tr;
  }

  function renderFills() {
    const tbody = $("fills").tBodies[0];
    const frag = document.createDocumentFragment();
    const fills = [...S.fills].sort((a, b) => String(b.sortKey).localeCompare(String(a.sortKey)));
    for (const f of fills) {
      frag.append(el("tr", { "data-clordid": f.ClOrdID, "data-execid": f.ExecID },
        el("td", { text: fmtTime(f.time) }),
        el("td", { class: "id", text: f.ClOrdID }),
        el("td", { text: f.broker || "" }),
        el("td", { text: f.Symbol || "" }),
        el("td", { class: `side-${f.Side}`, text: SIDES[f.Side] || f.Side || "" }),
        el("td", { class: "num", text: fmtNum(f.LastQty) }),
        el("td", { class: "num", text: fmtNum(f.LastPx) }),
        el("td", { class: "id muted", text: f.ExecID }),
      ));
    }
    tbody.replaceChildren(frag);
    $("fill-count").textContent = S.fills.length ? `${S.fills.length}` : "";
    $("fills-empty").hidden = S.fills.length > 0;
  }

  // --------------------------------------------------------------- actions
  async function cancelOrder(cl) {
    const o = S.orders.get(cl);
    if (!o) return;
    try {
      const view = await api("DELETE", `/v1/orders/${encodeURIComponent(cl)}`);
      delete view.CancelClOrdID;
      upsertOrder(view, true);
    } catch (err) {
      notice("error", errorContent(`Cancel of ${cl} refused`, err));
      refreshOrder(cl);
    }
  }

  async function replaceOrder(cl) {
    const o = S.orders.get(cl);
    if (!o) return;
    const body = { ClOrdID: newClOrdID() };
    if (o.Price !== undefined && o.Price !== null) {
      const price = window.prompt(`New price for ${cl} (${o.Symbol})`, o.Price);
      if (price === null) return;
      if (price.trim() !== String(o.Price)) body.Price = price.trim();
    }
    const qty = window.prompt(`New quantity for ${cl} (${o.Symbol})`, o.OrderQty);
    if (qty === null) return;
    if (qty.trim() !== String(o.OrderQty)) body.OrderQty = qty.trim();
    if (!("Price" in body) && !("OrderQty" in body)) {
      notice("info", `Nothing to replace on ${cl}: price and quantity unchanged.`, 5000);
      return;
    }
    try {
      const ans = await api("POST", `/v1/orders/${encodeURIComponent(cl)}/replace`, body);
      upsertOrder({ ClOrdID: cl, pending: "replace" });
      upsertOrder({
        ...o, execIds: [], pending: undefined, ReplacedBy: undefined, Text: undefined,
        ClOrdID: ans.ClOrdID, OrigClOrdID: cl, OrdStatus: ans.OrdStatus, state: ans.state,
        created: ans.created, OrderQty: body.OrderQty || o.OrderQty, Price: body.Price || o.Price,
      });
      refreshOrder(ans.ClOrdID);
    } catch (err) {
      notice("error", errorContent(`Replace of ${cl} refused`, err));
    }
  }

  function selectedType() {
    return S.ordTypes.find((t) => t.id === $("ordtype").value) || S.ordTypes[0];
  }

  function ticketBody() {
    const t = selectedType();
    const body = {
      ClOrdID: newClOrdID(),
      Symbol: $("symbol").value.trim(),
      Side: document.querySelector('input[name="Side"]:checked').value,
      OrderQty: $("qty").value.trim(),
      OrdType: t.OrdType,
    };
    if (t.ExecInst) body.ExecInst = t.ExecInst;
    if (t.priced || $("price").value.trim() !== "") body.Price = $("price").value.trim();
    if (t.conditions && $("tif").value !== "0") body.TimeInForce = $("tif").value;
    if ($("broker").value) body.DeliverToCompID = $("broker").value;
    const account = $("account").value.trim();
    if (account) body.Account = account;
    // Blank required fields are sent as they are: the gateway names every problem at once.
    return body;
  }

  function markInvalid(errors) {
    for (const input of document.querySelectorAll("#ticket [aria-invalid]")) input.removeAttribute("aria-invalid");
    for (const p of errors || []) {
      const id = FIELD_INPUTS[p.field];
      if (id) $(id).setAttribute("aria-invalid", "true");
    }
  }

  async function placeOrder(ev) {
    ev.preventDefault();
    const result = $("ticket-result");
    if (!S.key) {
      result.className = "result error";
      result.replaceChildren(el("div", { class: "title", text: "Enter your API key first" }));
      return;
    }
    const body = ticketBody();
    $("place").disabled = true;
    try {
      const ans = await api("POST", "/v1/orders", body);
      markInvalid([]);
      result.className = "result ok";
      result.dataset.clordid = ans.ClOrdID;
      result.replaceChildren(el("div", { class: "title", text: `Order ${ans.ClOrdID} sent` }),
        el("div", { text: `${SIDES[body.Side]} ${fmtNum(body.OrderQty)} ${body.Symbol} via ${ans.broker}: ${STATUS[ans.OrdStatus] || ans.state}` }));
      const known = S.orders.get(ans.ClOrdID);
      upsertOrder({
        ClOrdID: ans.ClOrdID, broker: ans.broker, created: ans.created, Symbol: body.Symbol, Side: body.Side,
        OrdType: body.OrdType, OrderQty: body.OrderQty, Price: body.Price,
        ...(known && known.OrdStatus !== "A" ? {} : { OrdStatus: ans.OrdStatus, state: ans.state, CumQty: "0", LeavesQty: body.OrderQty, AvgPx: "0" }),
      });
    } catch (err) {
      markInvalid(err.errors);
      result.className = "result error";
      delete result.dataset.clordid;
      result.replaceChildren(errorContent("Order refused", err));
    } finally {
      $("place").disabled = false;
    }
  }

  function updateTicketHints() {
    const t = selectedType();
    $("price").disabled = !t.priced;
    if (!t.priced) $("price").value = "";
    $("tif").disabled = !t.conditions;
    if (!t.conditions) $("tif").value = "0";
    const price = Number($("price").value);
    const qty = Number($("qty").value);
    const hints = [];
    if (t.priced && price > 0) {
      const tick = krxTick(price);
      hints.push(price % tick === 0 ? `tick ${tick}` : `off the tick grid (tick ${tick})`);
      if (qty > 0) hints.push(`notional ${fmtNum(price * qty)} KRW`);
    }
    $("price-hint").textContent = hints.join(" · ");
    $("symbol-name").textContent = symbolName($("symbol").value.trim());
    const side = document.querySelector('input[name="Side"]:checked').value;
    $("place").className = `primary ${side === "1" ? "buy" : "sell"}`;
    $("place").textContent = side === "1" ? "Place buy order" : "Place sell order";
    const b = S.brokers.find((x) => x.id === $("broker").value);
    $("broker-state").textContent = b ? (b.session && b.session.logged_on ? "FIX session up" : "FIX session down") : "";
  }

  // --------------------------------------------------------------- start-up
  async function loadConfig() {
    if (S.wsPort !== null) return;
    const res = await fetch("/stream-info");
    if (!res.ok) throw new ApiError(res.status, "stream_info", "the gateway did not say where its stream is", []);
    const info = await res.json();
    S.wsPort = info.port;
    S.wsPath = info.path || S.wsPath;
  }

  async function loadOrderTypes() {
    // Offer only the order types this gateway's FIX dictionary knows (FIX 4.2 has no K).
    try {
      const res = await fetch("/openapi.json");
      const doc = await res.json();
      const values = doc.components.schemas.NewOrderSingle.properties.OrdType.enum;
      if (Array.isArray(values)) {
        const known = new Set(values);
        S.ordTypes = ORDER_TYPES.filter((t) => known.has(t.OrdType) && (!t.fallbackFor || !known.has(t.fallbackFor)));
      }
    } catch {
      S.ordTypes = ORDER_TYPES.filter((t) => !t.fallbackFor);
    }
    const sel = $("ordtype");
    const current = sel.value;
    sel.replaceChildren(...S.ordTypes.map((t) => el("option", { value: t.id, text: t.label })));
    if (current && S.ordTypes.some((t) => t.id === current)) sel.value = current;
    updateTicketHints();
  }

  async function loadBrokers() {
    const data = await api("GET", "/v1/brokers");
    S.brokers = data.brokers || [];
    const sel = $("broker");
    const current = sel.value;
    sel.replaceChildren(...S.brokers.map((b) => el("option", { value: b.id, text: b.name ? `${b.name} (${b.id})` : b.id })));
    if (current && S.brokers.some((b) => b.id === current)) sel.value = current;
    updateTicketHints();
  }

  async function loadSnapshot(gen) {
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    let cursor = null;
    const views = [];
    for (let page = 0; page < MAX_SNAPSHOT_PAGES; page += 1) {
      const q = `since=${midnight.getTime()}&limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const data = await api("GET", `/v1/orders?${q}`);
      if (gen !== S.gen) return;
      views.push(...data.orders);
      cursor = data.next;
      if (!cursor) break;
    }
    for (const v of views) upsertOrder(v, true);
    // Fills of orders already traded before the page opened: their executions.
    const traded = views.filter((v) => Number(v.CumQty) > 0).slice(-MAX_FILL_DETAILS);
    await Promise.all(traded.map((v) => refreshOrder(v.ClOrdID)));
  }

  function clearRetry() {
    if (S.retryTimer !== null) {
      clearTimeout(S.retryTimer);
      S.retryTimer = null;
    }
  }

  function openStream(gen) {
    clearRetry();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.hostname}:${S.wsPort}${S.wsPath}`);
    S.ws = ws;
    const fresh = S.lastSeq === null;
    setConn("connecting", fresh ? "connecting…" : "resuming…");
    ws.onopen = () => {
      const auth = { op: "auth", api_key: S.key };
      if (!fresh) auth.since = S.lastSeq; // replay what was missed while away
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = (ev) => {
      if (gen !== S.gen) return;
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      if (f.type === "subscribed") {
        S.retry = 0;
        S.lastSeq = f.since;
        setConn("live", "live");
        if (fresh) {
          S.buffering = true;
          S.buffer = [];
          loadSnapshot(gen).catch((err) => notice("error", errorContent("Could not load orders", err))).finally(() => {
            if (gen !== S.gen) return;
            S.buffering = false;
            const pending = S.buffer;
            S.buffer = [];
            for (const [m, ts] of pending) applyMessage(m, ts);
          });
        }
      } else if (f.type === "message" || f.type === "event") {
        if (S.lastSeq !== null && f.seq <= S.lastSeq) return; // already applied
        if (S.lastSeq !== null && f.seq !== S.lastSeq + 1) {
          ws.close(4000, "gap"); // resume from our cursor; the log has what is missing
          return;
        }
        S.lastSeq = f.seq;
        $("conn-seq").textContent = `seq ${S.lastSeq}`;
        if (f.type === "event") applyGatewayEvent(f.event);
        else if (S.buffering) S.buffer.push([f.message, f.ts]);
        else applyMessage(f.message, f.ts);
      } else if (f.type === "error") {
        if (/beyond the last sequence/.test(f.reason || "")) S.lastSeq = null; // gateway lost its log: start over
        setConn("error", f.reason || "stream error");
      }
    };
    ws.onclose = (ev) => {
      if (gen !== S.gen || S.ws !== ws) return;
      S.ws = null;
      if (ev.code === 1008 && /API key/.test(ev.reason || "")) {
        setConn("error", "stream refused the API key");
        return;
      }
      const delay = Math.min(500 * 2 ** S.retry, 10000);
      S.retry += 1;
      setConn("connecting", `stream closed, reconnecting in ${Math.round(delay / 100) / 10}s`);
      S.retryTimer = setTimeout(() => reconnect(gen), delay);
    };
  }

  async function reconnect(gen) {
    S.retryTimer = null;
    if (gen !== S.gen) return;
    S.wsPort = null; // a restarted gateway may listen elsewhere
    try {
      await loadConfig();
    } catch (err) {
      if (gen !== S.gen) return;
      const delay = Math.min(500 * 2 ** S.retry, 10000);
      S.retry += 1;
      setConn("connecting", `gateway unreachable, retrying in ${Math.round(delay / 100) / 10}s`);
      S.retryTimer = setTimeout(() => reconnect(gen), delay);
      return;
    }
    if (gen !== S.gen) return;
    if (S.lastSeq === null) {
      S.orders.clear();
      S.fills = [];
      S.fillIds.clear();
    }
    openStream(gen);
  }

  async function connect() {
    const key = $("api-key").value.trim();
    S.gen += 1;
    const gen = S.gen;
    clearRetry();
    if (S.ws) { const old = S.ws; S.ws = null; old.close(1000, "reconnect"); }
    S.key = key;
    S.lastSeq = null;
    S.orders.clear();
    S.fills = [];
    S.fillIds.clear();
    scheduleRender();
    if (!key) {
      setConn("off", "not connected");
      return;
    }
    localStorage.setItem(KEY_STORE, key);
    setConn("connecting", "connecting…");
    try {
      await loadConfig();
      await loadBrokers();
    } catch (err) {
      if (gen !== S.gen) return;
      setConn("error", err.status === 401 ? "invalid API key" : err.message);
      notice("error", errorContent("Could not connect", err));
      return;
    }
    if (gen !== S.gen) return;
    openStream(gen);
    loadMarket();
  }

  function init() {
    const saved = localStorage.getItem(KEY_STORE) || "";
    $("api-key").value = saved;
    $("key-form").addEventListener("submit", (ev) => { ev.preventDefault(); connect(); });
    $("refresh-market").addEventListener("click", () => loadMarket());
    $("forget").addEventListener("click", () => {
      localStorage.removeItem(KEY_STORE);
      $("api-key").value = "";
      connect();
    });
    $("ticket").addEventListener("submit", placeOrder);
    $("ticket").addEventListener("input", updateTicketHints);
    $("ticket").addEventListener("change", updateTicketHints);
    $("open-only").addEventListener("change", scheduleRender);
    $("symbol").addEventListener("input", () => $("symbol").removeAttribute("aria-invalid"));
    loadOrderTypes();
    scheduleRender();
    if (saved) connect();
  }

  init();
})();
