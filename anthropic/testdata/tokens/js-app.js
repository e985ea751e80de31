// Usage dashboard: polls the admin endpoint and renders one row per credential.
import { formatDistanceToNowStrict } from "./time.js";

const POLL_MS = 5000;
const STATE_CLASS = {
  healthy: "badge badge-ok",
  cooling: "badge badge-warn",
  exhausted: "badge badge-error",
  disabled: "badge badge-muted",
};

export class Dashboard {
  #root;
  #timer = null;
  #lastEtag = "";

  constructor(root, { endpoint = "/proxycast/credentials", fetchImpl = fetch } = {}) {
    this.#root = root;
    this.endpoint = endpoint;
    this.fetch = fetchImpl;
  }

  start() {
    if (this.#timer !== null) return;
    const tick = async () => {
      try {
        await this.refresh();
      } catch (err) {
        this.showError(err);
      } finally {
        this.#timer = setTimeout(tick, POLL_MS);
      }
    };
    tick();
  }

  stop() {
    clearTimeout(this.#timer);
    this.#timer = null;
  }

  async refresh() {
    const res = await this.fetch(this.endpoint, {
      headers: this.#lastEtag ? { "If-None-Match": this.#lastEtag } : {},
    });
    if (res.status === 304) return;
    if (!res.ok) {
      throw new Error(`admin endpoint answered ${res.status} ${res.statusText}`);
    }
    this.#lastEtag = res.headers.get("ETag") ?? "";
    const creds = await res.json();
    this.render(creds);
  }

  render(creds) {
    const rows = creds
      .slice()
      .sort((a, b) => a.provider.localeCompare(b.provider) || a.name.localeCompare(b.name))
      .map((c) => {
        const until = c.cooldown_until ? new Date(c.cooldown_until) : null;
        const wait = until && until > Date.now() ? `for ${formatDistanceToNowStrict(until)}` : "";
        return `
          <tr data-name="${escapeHTML(c.name)}">
            <td>${escapeHTML(c.provider)}</td>
            <td>${escapeHTML(c.name)}</td>
            <td><span class="${STATE_CLASS[c.state] ?? "badge"}">${c.state}</span> ${wait}</td>
            <td class="num">${c.requests_today.toLocaleString()}</td>
            <td class="num">${(c.tokens_today / 1e6).toFixed(2)}M</td>
            <td>${c.last_error ? escapeHTML(`${c.last_error.status}: ${c.last_error.message}`) : "&mdash;"}</td>
          </tr>`;
      })
      .join("");
    this.#root.querySelector("tbody").innerHTML = rows;
    this.#root.querySelector(".updated").textContent = new Date().toLocaleTimeString();
  }

  showError(err) {
    const box = this.#root.querySelector(".error");
    box.hidden = false;
    box.textContent = String(err?.message ?? err);
  }
}

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("dashboard");
  if (root) new Dashboard(root).start();
});
