/* visionpack console: what every page shares. Plain script, no framework, nothing fetched from
   anywhere but this deploy.
   - Requests go to the deploy's own API routes, with this tab's API key (sessionStorage, sent as
     X-API-Key) and the page's console token (X-CSRF-Token, api/csrf.py): the checks a client's
     request passes apply unchanged.
   - Data is put on the page with textContent and element properties only; the one HTML this
     script inserts is a page or fragment the server rendered (Jinja, autoescaped), parsed with
     DOMParser and adopted, when a key has to ride along (a link cannot send a header). */
'use strict';
(function () {
  const KEY = 'visionpack.apiKey';
  const VP = window.VP = window.VP || {};
  VP.inits = VP.inits || {};
  VP.generation = 0;

  VP.key = function () {
    try { return sessionStorage.getItem(KEY) || ''; } catch (e) { return ''; }
  };

  VP.token = function () {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') || '' : '';
  };

  VP.headers = function (extra) {
    const h = Object.assign({}, extra || {});
    const key = VP.key();
    if (key) h['X-API-Key'] = key;
    return h;
  };

  /* POST a JSON body to an API route: {status, json, ms} (status 0: no answer). */
  VP.post = async function (path, body) {
    const started = performance.now();
    let resp;
    try {
      resp = await fetch(path, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: VP.headers({'Content-Type': 'application/json', 'X-CSRF-Token': VP.token()}),
        body: JSON.stringify(body),
      });
    } catch (e) {
      return {status: 0, json: null, error: String(e), ms: performance.now() - started};
    }
    let json = null;
    try { json = await resp.json(); } catch (e) { json = null; }
    return {status: resp.status, json: json, ms: performance.now() - started};
  };

  /* null for a success in either dialect; otherwise one line saying what went wrong. */
  VP.failure = function (answer) {
    const j = answer.json || {};
    const easydl = j.error_code !== undefined && j.error_code !== 0;
    const paddlex = j.errorCode !== undefined && j.errorCode !== 0;
    if (answer.status === 200 && !easydl && !paddlex) return null;
    if (answer.status === 0) return 'no answer: ' + (answer.error || 'the service did not respond');
    const code = easydl ? j.error_code : (paddlex ? j.errorCode : answer.status);
    const msg = (paddlex && j.errorMsg) || j.error_msg || j.errorMsg || ('HTTP ' + answer.status);
    const id = j.log_id || j.logId || '';
    let hint = '';
    if (code === 110 || answer.status === 401) hint = ' (set an API key holding this route\'s scope above)';
    else if (code === 6 || answer.status === 403) hint = ' (the key lacks this route\'s scope, or the request was refused as cross-site)';
    return 'error ' + code + ': ' + msg + (id ? ' · log id ' + id : '') + hint;
  };

  /* An element with text and properties; children are elements or strings (as text). */
  VP.el = function (tag, props, children) {
    const e = document.createElement(tag);
    Object.entries(props || {}).forEach(function ([k, v]) {
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, String(v));
      else e[k] = v;
    });
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  };

  VP.say = function (el, text, kind) {
    if (!el) return;
    el.textContent = text;
    el.className = 'status' + (kind ? ' ' + kind : '');
  };

  /* A chosen image file as {b64 (plain base64, as the API wants it), img (decoded)}. */
  VP.readImage = function (file) {
    return new Promise(function (resolve, reject) {
      const reader = new FileReader();
      reader.onerror = function () { reject(new Error('cannot read the file')); };
      reader.onload = function () {
        const url = String(reader.result);
        const img = new Image();
        img.onload = function () { resolve({b64: url.slice(url.indexOf(',') + 1), img: img, name: file.name}); };
        img.onerror = function () { reject(new Error('the browser cannot decode this image')); };
        img.src = url;
      };
      reader.readAsDataURL(file);
    });
  };

  /* A file input inside a drop zone: onFile(file) for a chosen or a dropped file. */
  VP.fileInput = function (input, onFile) {
    if (!input) return;
    const zone = input.closest('.drop') || input;
    input.addEventListener('change', function () { if (input.files[0]) onFile(input.files[0]); });
    zone.addEventListener('dragover', function (e) { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', function () { zone.classList.remove('over'); });
    zone.addEventListener('drop', function (e) {
      e.preventDefault();
      zone.classList.remove('over');
      if (e.dataTransfer.files[0]) onFile(e.dataTransfer.files[0]);
    });
  };

  /* Two clicks to act: the first asks, the second (within 4 s) does. */
  VP.confirmClick = function (button, question, action) {
    const label = button.textContent;
    let armed = null;
    button.addEventListener('click', function () {
      if (armed) {
        clearTimeout(armed);
        armed = null;
        button.textContent = label;
        button.classList.remove('armed');
        action();
        return;
      }
      button.textContent = question;
      button.classList.add('armed');
      armed = setTimeout(function () { armed = null; button.textContent = label; button.classList.remove('armed'); }, 4000);
    });
  };

  /* Server-rendered HTML (a page or a fragment) fetched with this tab's key. */
  VP.fetchHtml = async function (url) {
    const resp = await fetch(url, {headers: VP.headers({'Accept': 'text/html'}), credentials: 'same-origin', cache: 'no-store'});
    const type = resp.headers.get('Content-Type') || '';
    const text = await resp.text();
    if (!type.startsWith('text/html')) return {status: resp.status, doc: null};
    return {status: resp.status, doc: new DOMParser().parseFromString(text, 'text/html')};
  };

  /* Load a console page with the key (links cannot carry X-API-Key) and show it in place. */
  VP.load = async function (url, push) {
    let got;
    try { got = await VP.fetchHtml(url); } catch (e) { got = {status: 0, doc: null}; }
    if (!got.doc || got.doc.body.dataset.page === undefined) {
      VP.say(document.getElementById('key-state'), 'the page did not load (HTTP ' + got.status + ')', 'error');
      return got.status;
    }
    document.title = got.doc.title;
    const mine = document.querySelector('meta[name="csrf-token"]');
    const theirs = got.doc.querySelector('meta[name="csrf-token"]');
    if (mine) mine.setAttribute('content', theirs ? theirs.getAttribute('content') || '' : '');
    document.body.replaceWith(document.adoptNode(got.doc.body));
    if (push) history.pushState({vp: 1}, '', url);
    VP.start(got.status);
    return got.status;
  };

  function keyState(status) {
    const state = document.getElementById('key-state');
    const key = VP.key();
    if (!state) return;
    state.textContent = key ? 'key set for this tab (…' + key.slice(-4) + ')' : 'no key: this machine\'s access only';
    const locked = document.getElementById('locked-msg');
    if (locked && key && (status === 401 || status === 403)) {
      locked.textContent = 'The key was refused (' + status + '): it is unknown, revoked, or lacks the ops scope.';
    }
  }

  function bindKeyForm() {
    const form = document.getElementById('key-form');
    if (!form) return;
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      const input = document.getElementById('key-input');
      const key = input.value.trim();
      if (!key) return;
      try { sessionStorage.setItem(KEY, key); } catch (err) { /* storage off: the key lives until reload */ }
      input.value = '';
      VP.load(location.href, false);
    });
    document.getElementById('key-forget').addEventListener('click', function () {
      try { sessionStorage.removeItem(KEY); } catch (err) { /* nothing kept */ }
      location.reload();
    });
  }

  VP.start = function (status) {
    VP.generation += 1;
    bindKeyForm();
    keyState(status);
    const page = document.body.dataset.page;
    if (document.getElementById('locked')) {
      // A reload of a page that needs the key this tab holds: try it once.
      if (VP.key() && status === undefined) VP.load(location.href, false);
      return;
    }
    const init = VP.inits[page];
    if (init) init(VP.generation);
  };

  /* Overview: the charts fragment again every few seconds, while the overview is shown. */
  VP.inits.overview = function (generation) {
    const tick = async function () {
      if (generation !== VP.generation) return;
      const charts = document.getElementById('charts');
      if (!charts) return;
      if (!document.hidden) { // a tab in the background asks nothing
        try {
          const got = await VP.fetchHtml(charts.dataset.refresh);
          if (got.status === 401 || got.status === 403) { // the key was revoked, or the policy changed
            VP.say(document.getElementById('key-state'), 'refused (' + got.status + '): the numbers stopped; reload the page', 'error');
            return;
          }
          const fresh = got.doc && got.doc.getElementById('charts');
          if (fresh && generation === VP.generation) charts.replaceWith(document.adoptNode(fresh));
        } catch (e) { /* the next tick tries again */ }
      }
      setTimeout(tick, 2500);
    };
    setTimeout(tick, 1000);
  };

  document.addEventListener('click', function (e) {
    const link = e.target.closest && e.target.closest('a[data-nav]');
    if (!link || !VP.key() || e.button !== 0 || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    VP.load(link.href, true);
  });
  window.addEventListener('popstate', function () { if (VP.key()) VP.load(location.href, false); });
  document.addEventListener('DOMContentLoaded', function () { VP.start(); });
})();
