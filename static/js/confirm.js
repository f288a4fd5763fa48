/* Console forms with consequences carry data-confirm. Posted without confirmed=yes, their route changes
   nothing and answers with a confirmation page saying what would happen, with the numbers of the moment
   (app/core/pages.py confirm_page); that page is all a browser without JavaScript sees. Here a submit
   fetches that answer instead and asks in a <dialog> with its words; only the dialog's confirm button
   posts the form, with confirmed=yes. Anything unexpected falls back to the plain post, which only asks. */
(function () {
  "use strict";
  let dialog = null, pending = null;

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-title");
    const title = document.createElement("h2");
    title.id = "confirm-title";
    title.textContent = "Are you sure?";
    const message = document.createElement("p");
    message.className = "confirm-message";
    const actions = document.createElement("div");
    actions.className = "actions";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "confirm-cancel";
    cancel.textContent = "Keep things as they are";
    const go = document.createElement("button");
    go.type = "button";
    go.className = "danger confirm-go";
    actions.append(cancel, go);
    dialog.append(title, message, actions);
    document.body.append(dialog);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { pending = null; });
    go.addEventListener("click", () => {
      const form = pending;
      dialog.close();
      if (!form) return;
      const confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      confirmed.value = "yes";
      form.append(confirmed);
      HTMLFormElement.prototype.submit.call(form);
    });
  }

  async function ask(form) {
    let step = null;
    try {
      const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      step = response.ok ? page.getElementById("confirm-step") : null;
    } catch (error) {
      step = null;
    }
    if (!step) {
      HTMLFormElement.prototype.submit.call(form);  // the server's own answer: its confirmation page or an error
      return;
    }
    if (!dialog) build();
    pending = form;
    dialog.querySelector(".confirm-message").textContent = step.querySelector(".confirm-message").textContent;
    dialog.querySelector(".confirm-go").textContent = step.querySelector("button[type=submit]").textContent;
    dialog.showModal();
    dialog.querySelector(".confirm-cancel").focus();
  }

  document.addEventListener("submit", event => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !("confirm" in form.dataset)) return;
    if (form.querySelector("input[name=confirmed]")) return;
    event.preventDefault();
    ask(form);
  });
})();
