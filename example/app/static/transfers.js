// The API demo on /transfers: POST /api/transfers with fetch and an
// Idempotency-Key, then the same request again to show the replay. Loaded
// as an external file: the site's Content-Security-Policy allows no inline
// script.
"use strict";
(function () {
  var form = document.getElementById("api-demo");
  if (!form) return;
  var retry = document.getElementById("api-retry");
  var out = document.getElementById("api-output");
  var last = null; // {key, body} of the last request

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function show(text) {
    out.classList.remove("hidden");
    out.firstChild.textContent = text;
  }

  function send(req) {
    show("Sending…");
    fetch("/api/transfers", {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Idempotency-Key": '"' + req.key + '"'
      },
      body: req.body
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var head = "HTTP " + resp.status + "\n" +
          "Idempotency-Key: " + req.key + "\n";
        var replayed = resp.headers.get("Idempotent-Replayed");
        if (replayed) head += "Idempotent-Replayed: " + replayed + "\n";
        var pretty = text;
        try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
        show(head + "\n" + pretty);
      });
    }).catch(function (err) {
      show("Request failed: " + err);
    });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var amount = parseInt(form.elements.amount.value, 10);
    last = {
      key: newKey(),
      body: JSON.stringify({ to: form.elements.to.value, amount: isNaN(amount) ? form.elements.amount.value : amount })
    };
    retry.disabled = false;
    send(last);
  });

  retry.addEventListener("click", function () {
    if (last) send(last);
  });
})();
