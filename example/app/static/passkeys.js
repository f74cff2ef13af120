// Passkeys (WebAuthn) for the example app's forms. Loaded as an external
// file: the site's Content-Security-Policy allows no inline script.
//
// Every ceremony is: GET the options (JSON; the challenge is bound to this
// browser, and for all but sign-in to the session and account), ask the
// browser for a credential, put its JSON in a hidden field of the form and
// submit the form — an ordinary form post with its single-use nonce, so a
// refusal is a readable page and Back + submit again is refused like any
// form sent twice.
//
//   form[data-passkey=create]  navigator.credentials.create() → field "credential"
//   form[data-passkey=get]     navigator.credentials.get()    → field "credential"
//     [data-conditional]       also offered through the browser's autofill
//   button[data-passkey-proof] a step-up proof by passkey      → field "passkey"
//
// Without the WebAuthn API (or without JavaScript) the passkey forms and
// buttons stay hidden.
"use strict";
(function () {
  var PKC = window.PublicKeyCredential;
  if (!PKC || !navigator.credentials) return;

  // ---- base64url <-> bytes, for browsers without the JSON helpers ----

  function toBytes(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    if (!buf) return null;
    var b = new Uint8Array(buf), bin = "";
    for (var i = 0; i < b.length; i++) bin += String.fromCharCode(b[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIDs(list) {
    return (list || []).map(function (c) {
      var o = Object.assign({}, c);
      o.id = toBytes(c.id);
      return o;
    });
  }

  function creationOptions(json) {
    if (typeof PKC.parseCreationOptionsFromJSON === "function") return PKC.parseCreationOptionsFromJSON(json);
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    if (json.excludeCredentials) o.excludeCredentials = withIDs(json.excludeCredentials);
    return o;
  }

  function requestOptions(json) {
    if (typeof PKC.parseRequestOptionsFromJSON === "function") return PKC.parseRequestOptionsFromJSON(json);
    var o = Object.assign({}, json);
    o.challenge = toBytes(json.challenge);
    if (json.allowCredentials) o.allowCredentials = withIDs(json.allowCredentials);
    return o;
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") {
      try { return JSON.stringify(cred.toJSON()); } catch (e) { /* fall back below */ }
    }
    var r = cred.response, out = {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64u(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toB64u(r.authenticatorData);
      out.response.signature = toB64u(r.signature);
      out.response.userHandle = toB64u(r.userHandle);
    }
    return JSON.stringify(out);
  }

  // ---- the ceremonies ----

  // options fetches a ceremony's options; a refusal (problem+json) becomes
  // an Error with its title and detail.
  function options(url) {
    return fetch(url, {
      method: "GET",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Accept": "application/json" }
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (body) {
        if (!resp.ok) throw new Error((body.title || "HTTP " + resp.status) + (body.detail ? ". " + body.detail : ""));
        if (!body.publicKey) throw new Error("The server sent no passkey options.");
        return body.publicKey;
      });
    });
  }

  function status(form, text) {
    var el = form.querySelector(".passkey-status");
    if (el) el.textContent = text || "";
  }

  function explain(err) {
    switch (err && err.name) {
      case "NotAllowedError": return "The passkey request was cancelled or timed out. Nothing was sent.";
      case "InvalidStateError": return "This device already holds a passkey for this account.";
      case "SecurityError": return "This browser refuses passkeys at this address (use https, or http://localhost).";
      case "AbortError": return "";
    }
    return (err && err.message) || String(err);
  }

  function send(form, field, value) {
    form.querySelector('input[name="' + field + '"]').value = value;
    // HTMLFormElement.submit() fires no submit event: no loop.
    HTMLFormElement.prototype.submit.call(form);
  }

  // A pending autofill (conditional) request must end before a modal one
  // starts: the browser allows one request at a time.
  var conditional = null; // {abort: AbortController, done: Promise}

  function stopConditional() {
    if (!conditional) return Promise.resolve();
    var c = conditional;
    conditional = null;
    c.abort.abort();
    return c.done;
  }

  function startConditional(form) {
    if (typeof PKC.isConditionalMediationAvailable !== "function") return;
    PKC.isConditionalMediationAvailable().then(function (ok) {
      if (!ok || conditional) return;
      var abort = new AbortController();
      var done = options(form.dataset.options).then(function (json) {
        return navigator.credentials.get({ publicKey: requestOptions(json), mediation: "conditional", signal: abort.signal });
      }).then(function (cred) {
        if (cred && !abort.signal.aborted) send(form, "credential", credentialJSON(cred));
      }).catch(function () { /* cancelled or unavailable: the button still works */ });
      conditional = { abort: abort, done: done };
    }).catch(function () { /* no autofill: the button still works */ });
  }

  var busy = false;

  function ceremony(form, field, kind, url) {
    if (busy) return;
    busy = true;
    status(form, "Waiting for your passkey…");
    stopConditional().then(function () {
      return options(url);
    }).then(function (json) {
      return kind === "create"
        ? navigator.credentials.create({ publicKey: creationOptions(json) })
        : navigator.credentials.get({ publicKey: requestOptions(json) });
    }).then(function (cred) {
      if (!cred) throw new Error("No passkey was chosen.");
      status(form, "Checking…");
      send(form, field, credentialJSON(cred));
    }).catch(function (err) {
      busy = false;
      status(form, explain(err));
      if (form.hasAttribute("data-conditional")) startConditional(form);
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    form.hidden = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      ceremony(form, "credential", form.dataset.passkey, form.dataset.options);
    });
    if (form.hasAttribute("data-conditional")) startConditional(form);
  });

  document.querySelectorAll("button[data-passkey-proof]").forEach(function (btn) {
    var row = btn.closest("[data-passkey-proof-row]");
    if (row) row.hidden = false;
    btn.addEventListener("click", function () {
      ceremony(btn.form, "passkey", "get", "/account/passkeys/proof/options");
    });
  });

  // Back to a page the browser kept (its back/forward cache): the page is
  // as it was sent, with its spent nonce — let its buttons work again, so
  // that sending it twice is refused by the server, visibly.
  window.addEventListener("pageshow", function (ev) {
    if (!ev.persisted) return;
    busy = false;
    conditional = null;
    document.querySelectorAll(".passkey-status").forEach(function (el) { el.textContent = ""; });
    document.querySelectorAll("form[data-conditional]").forEach(startConditional);
  });

  document.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = true; });
})();
