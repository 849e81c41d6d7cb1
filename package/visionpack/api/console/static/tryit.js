/* visionpack console, "Try it": an image and the route's parameters sent to the route a client
   calls; the answer drawn over the image and shown as raw JSON. */
'use strict';
(function () {
  const VP = window.VP = window.VP || {};
  VP.inits = VP.inits || {};

  /* The form's parameters as the route reads them; an empty field is left out (the service's
     default applies). A value that is not a number is sent as typed: the route says what is wrong. */
  function params(form) {
    const out = {};
    form.querySelectorAll('input[data-kind]').forEach(function (input) {
      const raw = input.value.trim();
      if (raw === '') return;
      const kind = input.dataset.kind;
      const n = Number(raw);
      out[input.name] = kind === 'text' || !isFinite(n) ? raw : n;
    });
    return out;
  }

  VP.inits.try = function () {
    const section = document.getElementById('try');
    if (!section) return;
    const form = document.getElementById('try-form');
    const canvas = document.getElementById('try-canvas');
    const list = document.getElementById('try-list');
    const json = document.getElementById('try-json');
    const status = document.getElementById('try-status');
    const run = document.getElementById('try-run');
    const drawer = VP.draw[section.dataset.draw];
    let fixed = {};
    try { fixed = JSON.parse(section.dataset.fixed || '{}'); } catch (e) { fixed = {}; }
    let image = null;

    VP.fileInput(document.getElementById('try-file'), async function (file) {
      try {
        image = await VP.readImage(file);
      } catch (e) {
        VP.say(status, String(e.message || e), 'error');
        return;
      }
      document.getElementById('drop-text').textContent = file.name + ' (' + image.img.naturalWidth + '×' + image.img.naturalHeight + ')';
      VP.draw.fit(canvas, image.img, 640, 480);
      run.disabled = false;
      VP.say(status, 'ready to send ' + file.name);
    });

    form.addEventListener('submit', async function (e) {
      e.preventDefault();
      if (!image) return;
      run.disabled = true;
      VP.say(status, 'sending…');
      const body = Object.assign({}, fixed, params(form), {image: image.b64});
      const answer = await VP.post(section.dataset.path, body);
      run.disabled = false;
      json.textContent = answer.json === null ? '(no JSON in the answer)' : JSON.stringify(answer.json, null, 2);
      const failed = VP.failure(answer);
      if (failed) {
        VP.draw.fit(canvas, image.img, 640, 480);
        while (list.firstChild) list.removeChild(list.firstChild);
        VP.say(status, failed, 'error');
        return;
      }
      const summary = drawer(canvas, image.img, answer.json, list);
      VP.say(status, 'HTTP ' + answer.status + ' in ' + Math.round(answer.ms) + ' ms: ' + summary, 'ok');
    });
  };
})();
