// Card preview: reveal suggestions, and send real CDS Hooks feedback on accept or dismiss.
"use strict";

(function () {
  function cardOf(element) {
    return element.closest("article.cds-card");
  }

  function say(card, text, failed) {
    var status = card.querySelector(".feedback-status");
    status.textContent = text;
    status.classList.toggle("feedback-status--error", Boolean(failed));
  }

  function send(card, item, doneText) {
    var service = card.getAttribute("data-service-id");
    item.card = card.getAttribute("data-card-uuid");
    item.outcomeTimestamp = new Date().toISOString();
    var buttons = card.querySelectorAll(".cds-card__actions button, .js-accept");
    buttons.forEach(function (b) { b.disabled = true; });
    say(card, "Sending feedback…");
    return fetch("/cds-services/" + encodeURIComponent(service) + "/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ feedback: [item] }),
      credentials: "same-origin"
    }).then(function (response) {
      if (!response.ok) {
        throw new Error("the service answered HTTP " + response.status);
      }
      card.classList.add("cds-card--done");
      card.setAttribute("data-feedback", item.outcome);
      say(card, doneText);
    }).catch(function (error) {
      buttons.forEach(function (b) { b.disabled = false; });
      say(card, "Feedback was not recorded: " + error.message, true);
    });
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".suggestion__toggle");
    if (toggle) {
      var panel = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", open ? "false" : "true");
      panel.hidden = open;
      return;
    }
    var accept = event.target.closest(".js-accept");
    if (accept) {
      var card = cardOf(accept);
      var suggestion = accept.getAttribute("data-suggestion-uuid");
      var item = { outcome: "accepted", acceptedSuggestions: [] };
      if (suggestion) {
        item.acceptedSuggestions.push({ id: suggestion });
      }
      send(card, item, "Accepted. Feedback recorded.");
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form.js-dismiss");
    if (!form) {
      return;
    }
    event.preventDefault();
    var card = cardOf(form);
    var item = { outcome: "overridden" };
    var select = form.querySelector("select[name=reason]");
    var comment = form.querySelector("input[name=comment]").value.trim();
    var reason = {};
    if (select && select.value) {
      var option = select.options[select.selectedIndex];
      reason.reason = {
        system: option.getAttribute("data-system"),
        code: option.value,
        display: option.textContent
      };
    }
    if (comment) {
      reason.userComment = comment;
    }
    if (reason.reason || reason.userComment) {
      item.overrideReason = reason;
    }
    var shown = reason.reason ? " (" + reason.reason.display + ")" : "";
    send(card, item, "Dismissed" + shown + ". Feedback recorded.");
  });
}());

// The patient list is long (every rule case, and the Synthea records when present): a filter
// box hides the options that do not contain every typed word. Without JavaScript the box stays
// hidden and the list works as it is.
(function () {
  var filter = document.getElementById("patient-filter");
  var select = document.getElementById("patient");
  if (!filter || !select) {
    return;
  }
  filter.hidden = false;
  filter.addEventListener("input", function () {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    select.querySelectorAll("optgroup").forEach(function (group) {
      var shown = 0;
      group.querySelectorAll("option").forEach(function (option) {
        var text = (group.label + " " + option.textContent).toLowerCase();
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        option.hidden = !match;
        option.disabled = !match;
        shown += match ? 1 : 0;
      });
      group.hidden = shown === 0;
    });
  });
}());
