// Keyboard shortcuts and the edit forms of the review page. The server renders everything;
// htmx (vendored beside this file) posts each action and swaps the sample's card.
(function () {
  let current = 0;
  const cards = () => Array.from(document.querySelectorAll("#cards .card"));

  function select(i, scroll) {
    const all = cards();
    if (!all.length) return;
    current = Math.max(0, Math.min(all.length - 1, i));
    all.forEach((c, j) => c.classList.toggle("current", j === current));
    if (scroll) all[current].scrollIntoView({block: "nearest"});
  }

  function openEdit(card, turn) {
    const sections = card.querySelectorAll(".turn");
    const section = turn === undefined ? sections[sections.length - 1] : sections[turn];
    if (!section) return;
    const form = section.querySelector("form.edit");
    form.hidden = false;
    const area = form.querySelector("textarea[name=output]");
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-act]");
    const card = e.target.closest(".card");
    if (card) select(cards().indexOf(card), false);
    if (!button) return;
    if (button.dataset.act === "edit-open") {
      openEdit(card, Number(button.closest(".turn").dataset.turn));
    } else if (button.dataset.act === "edit-cancel") {
      button.closest("form").hidden = true;
    }
  });

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t.matches("textarea, input, select")) {
      const form = t.closest("form");
      if (e.key === "Escape") {
        if (form && form.classList.contains("edit")) form.hidden = true;
        t.blur();
      } else if (e.key === "Enter" && form && (e.ctrlKey || e.metaKey || t.matches("select"))) {
        e.preventDefault();
        htmx.trigger(form, "submit");
      }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const card = cards()[current];
    const click = (act) => { const b = card && card.querySelector(`[data-act=${act}]`); if (b && !b.disabled) b.click(); };
    switch (e.key) {
      case "j": select(current + 1, true); break;
      case "k": select(current - 1, true); break;
      case "a": click("accept"); break;
      case "u": click("undo"); break;
      case "r": if (card) card.querySelector("select[name=reason]").focus(); break;
      case "n": if (card) card.querySelector("input[name=note]").focus(); break;
      case "e": if (card) openEdit(card); break;
      case "/": document.querySelector("input[name=q]").focus(); break;
      default: return;
    }
    e.preventDefault();
  });

  // htmx wires up a swapped-in card when it settles, 20 ms later by default; a key pressed in between
  // would submit the card's form as a plain GET and leave the page. Settle at once, and should an
  // action form still be submitted before htmx knows it, hand it to htmx instead of the browser.
  htmx.config.defaultSettleDelay = 0;
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (e.defaultPrevented || !form.hasAttribute("hx-post")) return;
    e.preventDefault();
    htmx.process(form);
    htmx.trigger(form, "submit");
  });

  // After an action the card is replaced (and htmx settles its attributes): keep it the current one.
  document.addEventListener("htmx:afterSettle", () => select(current, false));
  document.addEventListener("DOMContentLoaded", () => select(0, false));
  // An action the server refused (the folder was re-indexed, the server stopped): say so at the top.
  document.addEventListener("htmx:responseError", (e) => {
    const box = document.getElementById("error");
    box.textContent = "Not saved: " + (e.detail.xhr.responseText || e.detail.xhr.statusText);
    box.hidden = false;
  });
  document.addEventListener("htmx:sendError", () => {
    const box = document.getElementById("error");
    box.textContent = "Not saved: the review server cannot be reached (is `zaoshu review` still running?)";
    box.hidden = false;
  });
})();
