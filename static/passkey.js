// Passkey buttons: ask Gatehouse for options, run the ceremony, send the answer back, follow the
// redirect. Also the address of a page that answers a POST (data-location). No inline script
// anywhere (CSP); the page's data attributes say where to go.
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;
  function post(url, csrf, body) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      return res.json().then(function (json) {
        if (!res.ok) throw new Error(json.error_description || json.message || 'The passkey could not be used.');
        return json;
      });
    });
  }
  function showError(box, message) {
    var alert = document.querySelector('[data-passkey-error]');
    if (alert) {
      alert.textContent = message;
      alert.hidden = false;
    }
  }
  // Enrollment with a passkey ends here: the backup codes, shown once, built as DOM (no HTML strings).
  function showBackupCodes(codes, next) {
    var main = document.querySelector('main');
    main.textContent = '';
    var h1 = document.createElement('h1');
    h1.textContent = 'Save your backup codes';
    var p = document.createElement('p');
    p.textContent = 'Each code signs you in once if you lose your passkey. They are shown only now: save them somewhere safe.';
    var list = document.createElement('ul');
    list.className = 'codes';
    list.setAttribute('aria-label', 'Backup codes');
    codes.forEach(function (c) {
      var li = document.createElement('li');
      var code = document.createElement('code');
      code.textContent = c;
      li.appendChild(code);
      list.appendChild(li);
    });
    var done = document.createElement('a');
    done.className = 'button';
    done.href = next;
    done.textContent = 'I have saved my backup codes';
    var wrap = document.createElement('p');
    wrap.appendChild(done);
    main.append(h1, p, list, wrap);
  }
  function run(box, mode) {
    var csrf = box.getAttribute('data-csrf');
    return post(box.getAttribute('data-options'), csrf)
      .then(function (options) {
        return mode === 'register' ? lib.startRegistration({ optionsJSON: options }) : lib.startAuthentication({ optionsJSON: options });
      })
      .then(function (answer) {
        var nameInput = document.getElementById('passkey-name');
        return post(box.getAttribute('data-verify'), csrf, { response: answer, name: nameInput ? nameInput.value : undefined });
      })
      .then(function (result) {
        if (result.codes) return showBackupCodes(result.codes, result.next);
        window.location.assign(result.location);
      })
      .catch(function (err) {
        if (err && err.name === 'AbortError') return;
        showError(box, err && err.message ? err.message : 'The passkey could not be used.');
      });
  }
  document.addEventListener('DOMContentLoaded', function () {
    // A page that answers a POST (the password step answers with the second-factor page) names its
    // own GET address: a reload then asks for that page instead of resending the form.
    var own = document.querySelector('[data-location]');
    if (own && window.history && window.history.replaceState) window.history.replaceState(null, '', own.getAttribute('data-location'));
    if (!lib || !window.PublicKeyCredential) {
      document.querySelectorAll('[data-passkey-button]').forEach(function (b) {
        b.disabled = true;
      });
      return;
    }
    document.querySelectorAll('[data-passkey-signin]').forEach(function (box) {
      box.querySelector('[data-passkey-button]').addEventListener('click', function () {
        run(box, 'signin');
      });
      // Passkey autofill: where the browser supports conditional mediation, the email field
      // offers the person's passkeys; picking one signs in without a click on the button.
      if (box.hasAttribute('data-autofill') && lib.browserSupportsWebAuthnAutofill) {
        lib
          .browserSupportsWebAuthnAutofill()
          .then(function (supported) {
            if (!supported) return;
            var csrf = box.getAttribute('data-csrf');
            return post(box.getAttribute('data-options'), csrf)
              .then(function (options) {
                return lib.startAuthentication({ optionsJSON: options, useBrowserAutofill: true });
              })
              .then(function (answer) {
                return post(box.getAttribute('data-verify'), csrf, { response: answer });
              })
              .then(function (result) {
                window.location.assign(result.location);
              });
          })
          .catch(function (err) {
            // Aborted when the person uses the button or the form instead: nothing to show.
            if (err && err.name !== 'AbortError' && !/abort/i.test(String(err.message)))
              showError(box, err.message || 'The passkey could not be used.');
          });
      }
    });
    document.querySelectorAll('[data-passkey-register]').forEach(function (box) {
      box.querySelector('[data-passkey-button]').addEventListener('click', function () {
        run(box, 'register');
      });
    });
  });
})();
