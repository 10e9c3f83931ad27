// Drives Salesforce's (the simulator's) login-and-consent page in headless Chromium through the
// Chrome DevTools Protocol: opens the authorize URL, clicks #allow (or #deny), and waits until
// the browser lands on sfetl's loopback callback page. Prints one JSON line with the result.
//
// usage: node --experimental-websocket consent.mjs CHROMIUM AUTHORIZE_URL CALLBACK_PREFIX allow|deny
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, authorizeUrl, callbackPrefix, decision = "allow"] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "sfetl-chromium-"));
const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run",
  `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"], detached: true });

let closing = false;
const fail = (msg) => {
  if (closing) return;
  console.log(JSON.stringify({ ok: false, error: msg }));
  cleanup(1);
};
// Chromium runs as a process group (zygote, GPU and network helpers) that keeps writing to its
// profile for a moment after the main process dies: the whole group is killed, its leader's
// exit awaited, and the removal retried, so that no profile is left behind in the temp dir.
async function cleanup(code) {
  closing = true;
  const running = browser.exitCode === null && browser.signalCode === null;
  const exited = running ? new Promise((r) => browser.once("exit", r)) : Promise.resolve();
  try { process.kill(-browser.pid, "SIGKILL"); } catch {}
  await exited;
  try { rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }); } catch {}
  process.exit(code);
}
setTimeout(() => fail("timed out after 60 s"), 60000).unref();

// Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
const wsUrl = await new Promise((resolve) => {
  let buf = "";
  browser.stderr.on("data", (d) => {
    buf += d.toString();
    const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  browser.on("exit", (code) => fail(`chromium exited with ${code}: ${buf.slice(-500)}`));
});

const ws = new WebSocket(wsUrl);
await new Promise((r, j) => { ws.onopen = r; ws.onerror = () => j(new Error("websocket")); });
let nextId = 1;
const pending = new Map();
ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
};
const send = (method, params = {}, sessionId) => new Promise((resolve) => {
  const id = nextId++;
  pending.set(id, resolve);
  ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
});

const { result: { targetId } } = await send("Target.createTarget", { url: authorizeUrl });
const { result: { sessionId } } = await send("Target.attachToTarget", { targetId, flatten: true });
const evaluate = async (expression) => {
  const r = await send("Runtime.evaluate", { expression, returnByValue: true }, sessionId);
  return r.result?.result?.value;
};
const until = async (expression) => {
  for (;;) {
    const v = await evaluate(expression);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
};

await until(`document.readyState === "complete" && !!document.querySelector("#${decision}")`);
await evaluate(`document.querySelector("#${decision}").click(); true`);
const landed = await until(
  `location.href.startsWith(${JSON.stringify(callbackPrefix)}) && document.readyState === "complete" && document.querySelector("#result") ? document.querySelector("h1").textContent : ""`,
);
closing = true;
console.log(JSON.stringify({ ok: true, title: landed }));
await cleanup(0);
