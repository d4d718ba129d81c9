// MMR dashboard: refresh each section from its partial, and send approve/reject with the CSRF token.
// Plain fetch(): no framework, no build step, nothing loaded from the network.
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const flash = document.getElementById("flash");

  // A section someone is typing in (focus, or text in one of its inputs) is not redrawn: never eat what is typed.
  function busy(section) {
    const active = document.activeElement;
    if (active && active.tagName === "INPUT" && section.contains(active)) return true;
    return Array.from(section.querySelectorAll("input")).some((input) => input.value);
  }

  async function refresh(section) {
    if (busy(section)) return;
    const reply = await fetch("/partial/" + section.dataset.section, {credentials: "same-origin"});
    if (reply.status === 401) { flash.textContent = "logged out: open the URL `mmr web` printed"; return; }
    const html = reply.ok ? await reply.text() : null;
    if (html !== null && !busy(section)) section.innerHTML = html; // typed while the request was out: keep it
  }

  function refreshAll() {
    document.querySelectorAll("[data-section]").forEach((s) => refresh(s).catch(() => {}));
  }

  document.querySelectorAll("[data-section]").forEach((s) => {
    setInterval(() => refresh(s).catch(() => {}), Number(s.dataset.refreshMs) || 2000);
  });

  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button[data-act]");
    if (!button) return;
    const box = button.closest("[data-proposal]");
    const id = box.dataset.proposal;
    const act = button.dataset.act;
    const body = act === "approve"
      ? {request_id: button.dataset.requestId, key: box.querySelector("input[name=key]").value || null}
      : {reason: box.querySelector("input[name=reason]").value};
    if (act === "reject" && !body.reason.trim()) { flash.textContent = "give a reason to reject"; return; }
    button.disabled = true;
    flash.textContent = `${act} #${id}…`;
    try {
      const reply = await fetch(`/proposals/${id}/${act}`, {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify(body),
      });
      const doc = await reply.json().catch(() => ({}));
      flash.textContent = doc.error
        ? `#${id}: ${doc.error.type}: ${doc.error.message}`
        : `#${id}: ${doc.state || "done"}${doc.state_reason ? " (" + doc.state_reason + ")" : ""}`;
    } catch (err) {
      flash.textContent = `#${id}: ${err}`;
    }
    button.disabled = false;
    box.querySelectorAll("input").forEach((input) => { input.value = ""; });
    if (document.activeElement) document.activeElement.blur();
    refreshAll();
  });
})();
