/* The annotator's page (/annotate): judge one pair at a time, keyboard first.

   Prefetching: while a pair is on screen the page already fetches the one behind it
   (GET /annotate/pair?after=<on screen>), so a submit shows the next pair at once. The server
   reserves that second pair too, with the same TTL, and an annotator never holds more than these
   two. Naming the pair on screen in the prefetch starts its clock on the server (time spent and a
   fresh TTL), since a prefetched pair may have waited. When the page is closed the prefetched pair
   is handed back at once (release), so it does not sit reserved until its lock expires.

   Submits carry an idempotency key (client_request_id) per pair: a double press, or a retry after
   a network error, stores one judgment. */
(() => {
  "use strict";

  const root = document.getElementById("annotate");
  if (!root) return;

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const slot = document.getElementById("pair-slot");
  const form = document.getElementById("verdict");
  const submitButton = document.getElementById("submit-button");
  const skipButton = document.getElementById("skip-button");
  const statusLine = document.getElementById("status");
  const rationale = document.getElementById("rationale");
  const choiceButtons = Array.from(form.querySelectorAll("[data-choice]"));
  const strengthButtons = Array.from(form.querySelectorAll("[data-strength]"));
  const skipDialog = document.getElementById("skip-dialog");
  const skipForm = document.getElementById("skip-form");
  const skipOther = document.getElementById("skip-other");
  const guidelines = document.getElementById("guidelines");
  const countToday = document.getElementById("count-today");
  const countTotal = document.getElementById("count-total");

  const RETRY_MS = Number(root.dataset.retryS || 10) * 1000;
  const EXPIRY_MARGIN_MS = 5000; // a prefetched pair this close to expiring is fetched afresh
  const STATUS_MS = 2000; // how long a confirmation or a hint stays (an error stays until replaced)
  const SIDED = new Set(["left", "right"]);

  const state = {
    id: null, // comparison on screen
    shownAt: 0, // performance.now() when it was shown
    requestId: null, // idempotency key for this pair's submit
    choice: null,
    strength: null,
    busy: false,
    next: null, // promise of the prefetched fragment
    nextId: null, // its comparison id, once it arrived (handed back when the page closes)
    pollTimer: null,
    statusTimer: null,
  };

  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setStatus(text, kind = "") {
    clearTimeout(state.statusTimer);
    statusLine.textContent = text;
    statusLine.dataset.kind = kind;
    if (text && kind !== "error") state.statusTimer = setTimeout(() => setStatus(""), STATUS_MS);
  }

  function parseFragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    const section = template.content.querySelector("section");
    const id = section && section.dataset.comparisonId ? Number(section.dataset.comparisonId) : null;
    const expiresAt = performance.now() + Number((section && section.dataset.expiresIn) || 0) * 1000;
    return { section, id, expiresAt };
  }

  async function fetchFragment(after) {
    const url = after === null ? "/annotate/pair" : `/annotate/pair?after=${after}`;
    const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (response.redirected && new URL(response.url).pathname === "/login") {
      window.location.assign("/login?next=/annotate");
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return parseFragment(await response.text());
  }

  function show(fragment) {
    clearTimeout(state.pollTimer);
    slot.replaceChildren(fragment.section);
    state.id = fragment.id;
    state.choice = null;
    state.strength = null;
    rationale.value = "";
    if (state.id === null) {
      form.hidden = true;
      state.pollTimer = setTimeout(refresh, RETRY_MS);
    } else {
      form.hidden = false;
      state.shownAt = performance.now();
      state.requestId = randomId();
      prefetch();
    }
    render();
  }

  function prefetch() {
    const after = state.id;
    state.nextId = null;
    state.next = fetchFragment(after).then(
      (fragment) => {
        if (state.id === after) state.nextId = fragment.id;
        return fragment;
      },
      () => null,
    );
  }

  async function refresh() {
    try {
      show(await fetchFragment(null));
    } catch (error) {
      setStatus("Could not reach the server; trying again…", "error");
      state.pollTimer = setTimeout(refresh, RETRY_MS);
    }
  }

  async function advance() {
    const pending = state.next;
    state.next = null;
    state.nextId = null;
    const fragment = pending ? await pending : null;
    if (fragment && fragment.id !== null && performance.now() < fragment.expiresAt - EXPIRY_MARGIN_MS) {
      show(fragment);
    } else {
      await refresh();
    }
  }

  function render() {
    for (const button of choiceButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.choice === state.choice));
    }
    const sided = SIDED.has(state.choice);
    for (const button of strengthButtons) {
      button.disabled = !sided;
      button.setAttribute("aria-pressed", String(sided && button.dataset.strength === state.strength));
    }
    for (const card of slot.querySelectorAll(".response")) {
      card.classList.toggle("chosen", card.dataset.side === state.choice);
      card.classList.toggle("tie", state.choice === "tie");
      card.classList.toggle("bad", state.choice === "both_bad");
    }
    submitButton.disabled = state.busy || state.id === null || state.choice === null;
    skipButton.disabled = state.busy || state.id === null;
  }

  function choose(choice) {
    if (state.id === null || state.busy) return;
    // A verdict on this pair ends what the status line said about the last one ("Saved.") or asked for.
    if (statusLine.dataset.kind !== "error") setStatus("");
    state.choice = choice;
    if (!SIDED.has(choice)) state.strength = null;
    render();
  }

  function setStrength(strength) {
    if (!SIDED.has(state.choice) || state.busy) return;
    state.strength = state.strength === strength ? null : strength;
    render();
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body.detail.map((item) => item.msg).join(" ");
    } catch (error) {
      return `The server answered ${response.status}.`;
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // Network errors are retried with the same body (same idempotency key): the server stores one.
  async function postJson(url, body, attempts = 3) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await fetch(url, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify(body),
        });
      } catch (error) {
        if (attempt >= attempts) throw error;
        await sleep(300 * attempt);
      }
    }
  }

  // A refused request: 409/404 mean the pair is gone for this annotator (judged, taken, retired), so
  // the page moves on; 422 leaves the pair on screen to fix the input; 401 means signed out.
  async function handleRefusal(response) {
    const message = await errorMessage(response);
    if (response.status === 401) {
      window.location.assign("/login?next=/annotate");
    } else if (response.status === 409 || response.status === 404) {
      setStatus(`${message} Here is the next pair.`, "error");
      await advance();
    } else if (response.status === 403) {
      setStatus(`${message} Reload the page to continue.`, "error");
    } else {
      setStatus(message, "error");
    }
  }

  async function send(url, body, onStored) {
    if (state.busy || state.id === null) return;
    state.busy = true;
    render();
    try {
      const response = await postJson(url, body);
      if (response.ok) {
        onStored(response);
        await advance();
      } else {
        await handleRefusal(response);
      }
    } catch (error) {
      setStatus("Could not reach the server. Try again: nothing will be stored twice.", "error");
    } finally {
      state.busy = false;
      render();
    }
  }

  function submit() {
    if (state.id === null || state.busy) return;
    if (state.choice === null) {
      setStatus("Pick a verdict first (keys 1–4).", "hint");
      return;
    }
    const body = {
      comparison_id: state.id,
      choice: state.choice,
      strength: SIDED.has(state.choice) ? state.strength : null,
      rationale: rationale.value,
      client_request_id: state.requestId,
      time_spent_ms: Math.round(performance.now() - state.shownAt),
    };
    send("/api/v1/judgments", body, (response) => {
      if (response.status === 201) {
        countToday.textContent = String(Number(countToday.textContent) + 1);
        countTotal.textContent = String(Number(countTotal.textContent) + 1);
      }
      setStatus("Saved. Here is the next pair.", "ok");
    });
  }

  function openSkip() {
    if (state.id === null || state.busy) return;
    skipDialog.showModal();
  }

  function confirmSkip() {
    const checked = skipForm.querySelector("input[name=reason]:checked");
    const reason = checked.value === "other" ? skipOther.value.trim() || "Other" : checked.value;
    skipDialog.close();
    send(`/api/v1/queue/${state.id}/skip`, { reason }, () => setStatus("Skipped.", "ok"));
  }

  const KEYS = {
    1: () => choose("left"),
    2: () => choose("right"),
    3: () => choose("tie"),
    4: () => choose("both_bad"),
    q: () => setStrength("slightly"),
    w: () => setStrength("clearly"),
    e: () => setStrength("much"),
    r: () => rationale.focus(),
    s: openSkip,
    g: () => guidelines && (guidelines.open = !guidelines.open),
    enter: submit,
  };

  function isTyping(target) {
    return target instanceof HTMLElement && target.matches("textarea, input[type=text], select");
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.defaultPrevented) return;
    if (skipDialog.open) {
      // Digits pick a reason; Enter (submit) and Esc (cancel) are the dialog's own.
      const radios = skipForm.querySelectorAll("input[name=reason]");
      const radio = /^[1-9]$/.test(event.key) && !isTyping(event.target) ? radios[Number(event.key) - 1] : null;
      if (radio) {
        event.preventDefault();
        radio.checked = true;
        if (radio.value === "other") skipOther.focus();
      }
      return;
    }
    if (isTyping(event.target)) {
      if (event.key === "Escape") event.target.blur();
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submit();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    const action = KEYS[event.key.toLowerCase()];
    if (action) {
      event.preventDefault();
      action();
    }
  });

  for (const button of choiceButtons) button.addEventListener("click", () => choose(button.dataset.choice));
  for (const button of strengthButtons) button.addEventListener("click", () => setStrength(button.dataset.strength));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  skipButton.addEventListener("click", openSkip);
  document.getElementById("skip-cancel").addEventListener("click", () => skipDialog.close());
  skipForm.addEventListener("submit", (event) => {
    event.preventDefault();
    confirmSkip();
  });
  skipOther.addEventListener("focus", () => {
    skipForm.querySelector("input[name=reason][value=other]").checked = true;
  });

  if (guidelines) {
    guidelines.open = localStorage.getItem("prefloop.guidelines.open") === "1";
    guidelines.addEventListener("toggle", () => {
      localStorage.setItem("prefloop.guidelines.open", guidelines.open ? "1" : "0");
    });
  }

  window.addEventListener("pagehide", () => {
    if (state.nextId !== null) {
      fetch(`/api/v1/queue/${state.nextId}/release`, {
        method: "POST", keepalive: true, credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
      });
    }
  });
  // Back from the back-forward cache: the prefetched pair was handed back on the way out.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) window.location.reload();
  });

  // The first pair (or the empty notice) came with the page itself.
  const first = slot.querySelector("section");
  show({ section: first, id: first.dataset.comparisonId ? Number(first.dataset.comparisonId) : null, expiresAt: 0 });
})();
