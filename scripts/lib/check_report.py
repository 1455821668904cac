#!/usr/bin/env python3
"""Loads a callq report in headless Chromium over the DevTools protocol and checks it.

Fails on a console error or uncaught exception, on any network request (the page must be
self-contained), on an empty chart or table, on a broken sort, and when a figure the page
exposes (data-* attributes) differs from the same figure computed in SQL on the BI views.
Takes a screenshot. Standard library only: the WebSocket client is the minimum CDP needs.
"""

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
]


class WebSocket:
    """A text-frame WebSocket client (RFC 6455), enough for the DevTools protocol."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"WebSocket handshake refused: {head[:200]!r}")
        self.buf = bytearray(rest)

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("DevTools connection closed")
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _send_frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        message = bytearray()
        while True:
            b0, b1 = self._take(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._take(2), "big")
            elif n == 127:
                n = int.from_bytes(self._take(8), "big")
            mask = self._take(4) if b1 & 0x80 else None
            payload = self._take(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise RuntimeError("DevTools connection closed by the browser")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()


class Browser:
    def __init__(self, chromium, timeout):
        self.profile = tempfile.mkdtemp(prefix="callq-chromium.")
        self.proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("chromium exited before opening its DevTools port")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port in time")
        self.ws = WebSocket(url, timeout)
        self.next_id = 0
        self.events = []
        self.session = None

    def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method):
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page exposes, collected in the page itself.
COLLECT = r"""
(() => {
  const num = v => (v === null || v === "" ? null : Number(v));
  const figures = {};
  document.querySelectorAll(".figure[data-figure]").forEach(f => {
    figures[f.dataset.figure] = {value: num(f.dataset.value), text: f.querySelector(".value").textContent.trim(),
      previous: num(f.dataset.previous), delta_pct: f.dataset.deltaPct, delta: f.querySelector(".delta").textContent.trim()};
  });
  const visible = el => {
    if (!el) return false;
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && s.display !== "none" && s.visibility !== "hidden" && Number(s.opacity) > 0;
  };
  const rows = [...document.querySelectorAll("#operators tbody tr")].map(r => ({
    id: Number(r.dataset.operatorId), calls: num(r.dataset.calls), avg: num(r.dataset.avg),
    spark: r.querySelector(".spark polyline, .spark circle") !== null}));
  return {
    from: document.body.dataset.from, to: document.body.dataset.to,
    department: document.body.dataset.department, operator: document.body.dataset.operator,
    figures,
    bars: [...document.querySelectorAll("#trend rect.bar")].map(b => ({day: b.dataset.day, calls: num(b.dataset.calls), h: Number(b.getAttribute("height"))})),
    dots: [...document.querySelectorAll("#trend circle.dot")].map(d => ({day: d.dataset.day, avg: num(d.dataset.avg)})),
    line_points: (document.querySelector("#trend polyline.line")?.getAttribute("points") || "").trim().split(/\s+/).filter(Boolean).length,
    operators: rows,
    heat_header: [...document.querySelectorAll("#heatmap thead tr:first-child th")].length - 1,
    heat_department: [...document.querySelectorAll("#heatmap tr.department td")].map(td => num(td.dataset.share)),
    heat_rows: document.querySelectorAll("#heatmap tbody tr").length,
    heat_cells: document.querySelectorAll("#heatmap tbody td[data-share]").length,
    sections: document.querySelectorAll("section.operator[id^='operator-']").length,
    review: document.querySelector("#review") !== null,
    lang: document.documentElement.lang,
    review_rows: [...document.querySelectorAll("#review-table tbody tr")].map(r => ({
      call: r.dataset.callId,
      reasons: [...r.querySelectorAll("[data-reason]")].map(t => ({code: t.dataset.reason, text: t.textContent.trim(), visible: visible(t)})),
      failing: [...r.querySelectorAll(".failing")].map(f => ({
        criterion: f.querySelector("b").textContent.trim(),
        why: [...f.querySelectorAll("[data-why]")].map(w => ({code: w.dataset.why, text: w.textContent.trim(), visible: visible(w)})),
      })),
    })),
    quotes: [...document.querySelectorAll("#review blockquote")].map(q => {
      const s = getComputedStyle(q), flag = q.querySelector(".flag");
      return {call: q.closest("tr").dataset.callId, verified: q.dataset.verified,
              unverified_class: q.classList.contains("unverified"),
              look: [s.borderLeftStyle, s.borderLeftColor, s.backgroundColor, s.color].join(" "),
              flag: flag ? flag.textContent.trim() : null, flag_visible: visible(flag), visible: visible(q)};
    }),
    width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
  };
})()
"""

# Clicks the average header twice and reads the column after each click.
SORT = r"""
(() => {
  const th = document.querySelectorAll("#operators thead th")[3];
  const col = () => [...document.querySelectorAll("#operators tbody tr")].map(r => r.dataset.avg === "" ? null : Number(r.dataset.avg));
  th.click(); const asc = col();
  th.click(); const desc = col();
  return {asc, desc};
})()
"""


def evaluate(b, expression):
    r = b.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
    if "exceptionDetails" in r:
        raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
    return r["result"]["value"]


def sql(database, query):
    out = subprocess.run(["psql", database, "-XAtq", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", query],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, action="append",
                    help="a report to check; repeat for more (the first is the screenshot's)")
    ap.add_argument("--database", required=True)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    failed = 0
    b = Browser(args.chromium, args.timeout)
    try:
        for i, report in enumerate(args.report):
            failures = check(b, report, args.database, args.screenshot if i == 0 else None)
            for f in failures:
                print(f"check_report: FAIL {report}: {f}", file=sys.stderr)
            failed += len(failures)
    finally:
        b.close()
    if failed:
        print(f"0 passed, {failed} failed")
        sys.exit(1)
    print("check_report: the pages load offline, without errors, their figures match the views, "
          "and the review queue speaks the page's language and marks quotes not in the transcript")


# What the review queue's reasons and a quote not found are called on the page.
REASONS = {
    "ru": {"low_score": "низкий процент", "critical_missed": "критичный критерий на нуле",
           "unverified_evidence": "цитата не найдена в расшифровке"},
    "en": {"low_score": "low score", "critical_missed": "critical criterion scored 0",
           "unverified_evidence": "quote not found in the transcript"},
}
QUOTE_NOT_FOUND = {"ru": "цитата не найдена в расшифровке", "en": "quote not found in the transcript"}
# The previous period's count below which the page gives no change in per cent.
MIN_BASE_FOR_CHANGE = 20


def check(b, report, database, screenshot):
    """Loads `report` in a new tab of `b`; returns what is wrong with it."""
    report_url = "file://" + os.path.abspath(report)
    failures = []
    started = time.monotonic()
    b.session = None
    b.events.clear()
    target = b.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
    b.session = b.call("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
    for domain in ("Page", "Runtime", "Network", "Log"):
        b.call(f"{domain}.enable")
    b.call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    b.call("Page.navigate", {"url": report_url})
    b.wait_for("Page.loadEventFired")
    # Two animation frames: layout and the inline script have run, late errors are in.
    evaluate(b, "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))")
    page = evaluate(b, COLLECT)
    sort = evaluate(b, SORT)
    if screenshot:
        shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                   "clip": {"x": 0, "y": 0, "width": 1280, "height": min(page["height"], 1900), "scale": 1}})
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    events = [e for e in b.events if e.get("sessionId") in (None, b.session)]
    b.call("Target.closeTarget", {"targetId": target}, session=False)

    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Network.requestWillBeSent" and p["request"]["url"] != report_url:
            failures.append(f"network request: {p['request']['url']}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            failures.append(f"console {p['type']}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif m == "Runtime.exceptionThrown":
            failures.append(f"uncaught exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {}).get('description', '')}")
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            failures.append(f"log error: {p['entry'].get('text')} {p['entry'].get('url', '')}")

    # Non-empty charts and tables.
    if not page["bars"] or not page["dots"] or any(bar["h"] <= 0 for bar in page["bars"]):
        failures.append("the trend chart is empty (no bars or no points)")
    if len(page["dots"]) > 1 and page["line_points"] != len(page["dots"]):
        failures.append(f"the trend line has {page['line_points']} points for {len(page['dots'])} days")
    if not page["operators"]:
        failures.append("the operator table is empty")
    if not all(r["spark"] for r in page["operators"] if r["calls"]):
        failures.append("an operator with calls has no sparkline")
    if page["heat_header"] <= 0 or page["heat_rows"] == 0 or page["heat_cells"] == 0:
        failures.append("the criterion heatmap is empty")
    if page["sections"] != len(page["operators"]):
        failures.append(f"{page['sections']} operator sections for {len(page['operators'])} operators")
    asc = [v for v in sort["asc"] if v is not None]
    desc = [v for v in sort["desc"] if v is not None]
    if asc != sorted(asc) or desc != sorted(desc, reverse=True):
        failures.append(f"sorting by average is broken: {sort}")

    # The same figures, in SQL on the views, the way the README's queries compute them.
    where = f"day BETWEEN '{page['from']}' AND '{page['to']}'"
    if page["department"]:
        where += f" AND department_id = {int(page['department'])}"
    if page["operator"]:
        where += f" AND operator_id = {int(page['operator'])}"
    [[calls, not_sales, avg]] = sql(database, f"""
        SELECT COALESCE(sum(calls_scored), 0), COALESCE(sum(calls_not_sales), 0),
               COALESCE((sum(avg_performance_percentage * calls_scored) / NULLIF(sum(calls_scored), 0))::text, '')
        FROM v_operator_daily WHERE {where}""")
    fig = page["figures"]

    def close(a, b, what):
        if a is None or b is None or abs(a - b) > 1e-4:
            failures.append(f"{what}: page {a}, views {b}")

    if fig["calls_scored"]["value"] != int(calls):
        failures.append(f"calls scored: page {fig['calls_scored']['value']}, views {calls}")
    if fig["not_sales"]["value"] != int(not_sales):
        failures.append(f"not-sales calls: page {fig['not_sales']['value']}, views {not_sales}")
    close(fig["avg_pct"]["value"], float(avg) if avg else None, "average percentage")
    shown = fig["avg_pct"]["text"].replace("\u00a0", " ").replace(",", ".").replace("%", "").strip()
    if avg and abs(float(shown) - round(float(avg), 1)) > 0.051:
        failures.append(f"average percentage shown as {fig['avg_pct']['text']}, views {avg}")
    if int(calls) == 0:
        failures.append("the views have no scored calls for the page's period: nothing was checked")

    per_day = {d: (int(c), float(a)) for d, c, a in sql(database, f"""
        SELECT day, sum(calls_scored), (sum(avg_performance_percentage * calls_scored) / sum(calls_scored))::text
        FROM v_operator_daily WHERE {where} GROUP BY day HAVING sum(calls_scored) > 0 ORDER BY day""")}
    page_days = {bar["day"]: bar["calls"] for bar in page["bars"]}
    if page_days != {d: c for d, (c, _) in per_day.items()}:
        failures.append(f"calls per day: page {page_days}, views { {d: c for d, (c, _) in per_day.items()} }")
    for dot in page["dots"]:
        close(dot["avg"], per_day.get(dot["day"], (0, None))[1], f"average of {dot['day']}")

    per_op = {int(i): (int(c), float(a) if a else None) for i, c, a in sql(database, f"""
        SELECT operator_id, sum(calls_scored),
               COALESCE((sum(avg_performance_percentage * calls_scored) / NULLIF(sum(calls_scored), 0))::text, '')
        FROM v_operator_daily WHERE {where} AND operator_id IS NOT NULL GROUP BY operator_id""")}
    if sorted(r["id"] for r in page["operators"]) != sorted(per_op):
        failures.append(f"operators: page {sorted(r['id'] for r in page['operators'])}, views {sorted(per_op)}")
    for r in page["operators"]:
        calls_v, avg_v = per_op.get(r["id"], (None, None))
        if r["calls"] != calls_v:
            failures.append(f"calls of operator {r['id']}: page {r['calls']}, views {calls_v}")
        if avg_v is not None:
            close(r["avg"], avg_v, f"average of operator {r['id']}")

    dept_where = f"day BETWEEN '{page['from']}' AND '{page['to']}'"
    if page["department"]:
        dept_where += f" AND department_id = {int(page['department'])}"
    crit = [float(v) for [v] in sql(database, f"""
        SELECT (sum(avg_score_share * evaluations) / sum(evaluations))::text
        FROM v_criterion_daily WHERE {dept_where} GROUP BY category, criterion""")]
    if sorted(round(v, 4) for v in crit) != sorted(round(v, 4) for v in page["heat_department"] if v is not None):
        failures.append(f"criterion shares: page {page['heat_department']}, views {crit}")

    # The previous period: its counts shown, a change in per cent only from a base that
    # gives it meaning.
    days = (datetime.date.fromisoformat(page["to"]) - datetime.date.fromisoformat(page["from"])).days + 1
    prev_to = datetime.date.fromisoformat(page["from"]) - datetime.timedelta(days=1)
    prev_from = prev_to - datetime.timedelta(days=days - 1)
    prev_where = where.replace(f"day BETWEEN '{page['from']}' AND '{page['to']}'",
                               f"day BETWEEN '{prev_from}' AND '{prev_to}'")
    [[prev_calls, prev_not_sales]] = sql(database, f"""
        SELECT COALESCE(sum(calls_scored), 0), COALESCE(sum(calls_not_sales), 0)
        FROM v_operator_daily WHERE {prev_where}""")
    for key, before in (("calls_scored", int(prev_calls)), ("not_sales", int(prev_not_sales))):
        f = fig[key]
        if f["previous"] != before:
            failures.append(f"{key} of the previous period: page {f['previous']}, views {before}")
        if before < MIN_BASE_FOR_CHANGE and (f["delta_pct"] or "%" in f["delta"]):
            failures.append(f"{key}: a change in per cent from {before} call(s): {f['delta']!r}")
        if before >= MIN_BASE_FOR_CHANGE and not f["delta_pct"]:
            failures.append(f"{key}: no change in per cent from {before} calls")

    failures += check_review(page, database, where)

    elapsed = time.monotonic() - started
    quotes = page["quotes"]
    print(f"check_report: {report}: lang {page['lang']}, {len(page['operators'])} operators, {len(page['bars'])} days, "
          f"{page['heat_header']} criteria, {len(page['review_rows'])} calls to review with "
          f"{sum(q['verified'] == 'false' for q in quotes)} of {len(quotes)} quotes not found, "
          f"{len(events)} browser events, {elapsed:.1f} s" + (f"; screenshot {screenshot}" if screenshot else ""))
    return failures


def check_review(page, database, where):
    """The review queue against v_review_queue: reasons in words, why per criterion, and
    every quote the transcript does not contain marked, visibly unlike the found ones."""
    failures = []
    if not page["review"]:
        return ["the review section is missing (the demo's database has v_review_queue)"]
    lang = page["lang"]
    words = REASONS.get(lang)
    if words is None:
        return [f"no expected words for the page language {lang!r}"]
    queue = {call: (reasons.split(",") if reasons else [], int(unverified)) for call, reasons, unverified in sql(database, f"""
        SELECT call_id, array_to_string(review_reasons, ','),
               (SELECT count(*) FROM jsonb_array_elements(failing_criteria) e
                WHERE e->>'evidence_verified' = 'false' AND COALESCE(e->>'evidence', '') <> '')
        FROM v_review_queue WHERE {where}""")}
    rows = {r["call"]: r for r in page["review_rows"]}
    if set(rows) != set(queue):
        failures.append(f"calls to review: page {sorted(rows)}, view {sorted(queue)}")
    for call, r in rows.items():
        codes = [t["code"] for t in r["reasons"]]
        if call in queue and codes != queue[call][0]:
            failures.append(f"reasons of call {call}: page {codes}, view {queue[call][0]}")
        for t in r["reasons"]:
            if t["text"] != words.get(t["code"]) or not t["visible"]:
                failures.append(f"call {call}: reason {t['code']} shown as {t['text']!r}, not {words.get(t['code'])!r}")
        for f in r["failing"]:
            if not f["why"] or not all(w["visible"] and w["text"] and w["text"] != w["code"] for w in f["why"]):
                failures.append(f"call {call}: criterion {f['criterion']!r} does not say why it is listed: {f['why']}")
    quotes = page["quotes"]
    unverified = [q for q in quotes if q["verified"] == "false"]
    verified = [q for q in quotes if q["verified"] != "false"]
    for call, (_, expected) in queue.items():
        shown = sum(q["call"] == call for q in unverified)
        if shown != expected:
            failures.append(f"call {call}: {shown} quote(s) marked not found, the view has {expected}")
    if not unverified:
        failures.append("no quote in the review queue is marked not found: nothing was checked "
                        "(the demo's calls include invented quotes)")
    flag = QUOTE_NOT_FOUND[lang]
    for q in unverified:
        if not q["unverified_class"] or not q["flag_visible"] or flag not in (q["flag"] or ""):
            failures.append(f"call {q['call']}: a quote not found is not marked {flag!r} where it is read: {q}")
    for q in verified:
        if q["flag"] is not None or q["unverified_class"]:
            failures.append(f"call {q['call']}: a found quote is marked as not found: {q}")
    looks_verified = {q["look"] for q in verified}
    for q in unverified:
        if q["look"] in looks_verified:
            failures.append(f"call {q['call']}: a quote not found looks like a found one ({q['look']})")
    return failures


if __name__ == "__main__":
    main()
