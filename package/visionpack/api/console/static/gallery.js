/* visionpack console, face gallery: indexes, labels with the thumbnails of their stored crops,
   add from an image (choosing the face), remove, search; paged. Every call is one of the
   deploy's gallery routes (EasyDL FaceGallery/*, PaddleX face-recognition-infer). */
'use strict';
(function () {
  const VP = window.VP = window.VP || {};
  VP.inits = VP.inits || {};
  const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
  const MARGIN = 0.6; // around a chosen face, of its larger side: enough context for the detector

  VP.inits.gallery = function () {
    const root = document.getElementById('gallery');
    if (!root) return;
    const paths = root.dataset;
    const pageSize = Number(paths.pageSize) || 24;
    const msg = document.getElementById('gallery-msg');
    const select = document.getElementById('index');
    const state = {index: 'default', label: '', start: 0, total: 0, known: ['default']};

    function fail(answer, what) {
      const why = VP.failure(answer);
      if (why) VP.say(msg, what + ': ' + why, 'error');
      return why;
    }

    function fillIndexes(keys) {
      state.known = keys.slice();
      while (select.firstChild) select.removeChild(select.firstChild);
      keys.forEach(function (k) { select.appendChild(VP.el('option', {value: k, text: k, selected: k === state.index})); });
    }

    function faceCard(face, thumbs) {
      const img = VP.el('img', {alt: 'face ' + face.face_id, width: 72, height: 72, 'data-face-id': face.face_id});
      thumbs[face.face_id] = img;
      const remove = VP.el('button', {type: 'button', class: 'quiet danger', text: 'Remove', 'data-remove-face': face.face_id});
      VP.confirmClick(remove, 'Confirm', async function () {
        const answer = await VP.post(paths.remove, {group_id: state.index, face_ids: [face.face_id]});
        if (!fail(answer, 'remove')) {
          VP.say(msg, 'removed face ' + face.face_id + ' (' + face.user_id + ') from ' + state.index, 'ok');
          load();
        }
      });
      return VP.el('figure', {class: 'face', 'data-face-id': face.face_id}, [
        img, VP.el('figcaption', {text: '#' + face.face_id}), remove]);
    }

    function labelGroup(label, faces, thumbs) {
      const removeAll = VP.el('button', {type: 'button', class: 'quiet danger', text: 'Remove every face of this label'});
      VP.confirmClick(removeAll, 'Confirm: remove all', async function () {
        const answer = await VP.post(paths.remove, {group_id: state.index, user_id: label});
        if (!fail(answer, 'remove')) {
          VP.say(msg, 'removed every face labelled ' + label + ' from ' + state.index, 'ok');
          load();
        }
      });
      return VP.el('div', {class: 'label-group', 'data-label': label}, [
        VP.el('div', {class: 'row spread'}, [VP.el('h3', {text: label + ' · ' + faces.length + ' on this page'}), removeAll]),
        VP.el('div', {class: 'thumbs'}, faces.map(function (f) { return faceCard(f, thumbs); })),
      ]);
    }

    async function thumbnails(ids, thumbs) {
      if (!ids.length) return;
      const answer = await VP.post(paths.crops, {group_id: state.index, face_ids: ids});
      if (fail(answer, 'thumbnails')) return;
      (answer.json.result.crops || []).forEach(function (c) {
        const img = thumbs[c.face_id];
        if (img && typeof c.image === 'string' && B64.test(c.image)) img.src = 'data:image/png;base64,' + c.image;
      });
    }

    async function load() {
      const body = {group_id: state.index, start: state.start, length: pageSize};
      if (state.label) body.user_id = state.label;
      const answer = await VP.post(paths.list, body);
      const box = document.getElementById('faces');
      if (fail(answer, 'list')) {
        while (box.firstChild) box.removeChild(box.firstChild);
        return;
      }
      const res = answer.json.result;
      fillIndexes(res.group_id_list || [state.index]);
      state.total = res.face_num;
      const faces = res.face_list || [];
      const groups = new Map();
      faces.forEach(function (f) {
        if (!groups.has(f.user_id)) groups.set(f.user_id, []);
        groups.get(f.user_id).push(f);
      });
      const thumbs = {};
      while (box.firstChild) box.removeChild(box.firstChild);
      groups.forEach(function (list, label) { box.appendChild(labelGroup(label, list, thumbs)); });
      if (!faces.length) box.appendChild(VP.el('p', {class: 'muted', text: 'no faces' + (state.label ? ' labelled ' + state.label : '') + ' in ' + state.index}));
      document.getElementById('faces-title').textContent = 'Faces in ' + state.index + (state.label ? ' labelled ' + state.label : '');
      const last = Math.min(state.start + faces.length, state.total);
      document.getElementById('page-info').textContent = state.total ? (state.start + 1) + '–' + last + ' of ' + state.total : '0 of 0';
      document.getElementById('page-prev').disabled = state.start <= 0;
      document.getElementById('page-next').disabled = last >= state.total;
      await thumbnails(faces.map(function (f) { return f.face_id; }), thumbs);
    }

    document.getElementById('index-form').addEventListener('submit', function (e) {
      e.preventDefault();
      const fresh = document.getElementById('index-new').value.trim();
      state.index = fresh || select.value || 'default';
      state.label = document.getElementById('label-filter').value.trim();
      state.start = 0;
      if (fresh && state.known.indexOf(fresh) < 0) {
        VP.say(msg, 'index ' + fresh + ' does not exist yet: adding a face to it creates it', '');
        fillIndexes(state.known.concat([fresh]));
        return;
      }
      load();
    });
    select.addEventListener('change', function () {
      document.getElementById('index-new').value = '';
      state.index = select.value;
      state.start = 0;
      load();
    });
    document.getElementById('page-prev').addEventListener('click', function () { state.start = Math.max(0, state.start - pageSize); load(); });
    document.getElementById('page-next').addEventListener('click', function () { state.start += pageSize; load(); });
    VP.confirmClick(document.getElementById('index-delete'), 'Confirm: delete this index', async function () {
      const gone = state.index;
      const answer = await VP.post(paths.delete, {group_id: gone});
      if (!fail(answer, 'delete')) {
        VP.say(msg, gone === 'default' ? 'emptied the default index' : 'deleted index ' + gone + ' (' + answer.json.result.removed_faces + ' faces)', 'ok');
        state.index = 'default';
        state.start = 0;
        load();
      }
    });

    /* Add: detect the faces, let the operator pick one, send that face (cropped with a margin
       when there are several, so the service enrolls that one and no other). */
    const add = {image: null, faces: [], chosen: -1};
    const addCanvas = document.getElementById('add-canvas');
    const addRun = document.getElementById('add-run');
    const choices = document.getElementById('add-faces');

    function drawChoices() {
      VP.draw.faces(addCanvas, add.image.img, {result: {faces: add.faces}}, null, {numbered: true, selected: add.chosen, maxW: 480, maxH: 360});
    }

    function choose(i) {
      add.chosen = i;
      const radio = choices.querySelector('input[value="' + i + '"]');
      if (radio) radio.checked = true;
      drawChoices();
    }

    VP.fileInput(document.getElementById('add-file'), async function (file) {
      try { add.image = await VP.readImage(file); } catch (e) { VP.say(msg, String(e.message || e), 'error'); return; }
      addRun.disabled = true;
      VP.say(msg, 'finding faces in ' + file.name + '…');
      const index = state.known.indexOf(state.index) >= 0 ? state.index : 'default';
      const answer = await VP.post(paths.search, {image: add.image.b64, indexKey: index, visualize: false});
      if (fail(answer, 'detect')) return;
      add.faces = answer.json.result.faces || [];
      while (choices.firstChild) choices.removeChild(choices.firstChild);
      choices.appendChild(VP.el('legend', {text: 'Which face (' + add.faces.length + ' found)'}));
      add.faces.forEach(function (f, i) {
        const best = f.recResults && f.recResults.length ? f.recResults[0] : null;
        const radio = VP.el('input', {type: 'radio', name: 'add-face', value: String(i)});
        radio.addEventListener('change', function () { choose(i); });
        choices.appendChild(VP.el('label', {class: 'choice'}, [radio,
          ' face ' + (i + 1) + ': ' + (best ? 'looks like ' + best.label + ' (' + Number(best.score).toFixed(2) + ')' : 'unknown') +
          ', box ' + f.bbox.map(function (v) { return Math.round(v); }).join(',')]));
      });
      if (!add.faces.length) {
        choices.appendChild(VP.el('p', {class: 'muted', text: 'no face found: the whole image would be stored, as PaddleX does'}));
      }
      // The largest face is the likely one; with several the operator confirms or picks another.
      let largest = add.faces.length ? 0 : -1;
      add.faces.forEach(function (f, i) {
        const area = function (b) { return (b[2] - b[0]) * (b[3] - b[1]); };
        if (area(f.bbox) > area(add.faces[largest].bbox)) largest = i;
      });
      choose(largest);
      addRun.disabled = false;
      VP.say(msg, add.faces.length > 1 ? 'several faces: choose one, then add' : 'ready to add', '');
    });
    addCanvas.addEventListener('click', function (e) {
      if (!add.image || add.faces.length < 2) return;
      const rect = addCanvas.getBoundingClientRect();
      const scale = addCanvas.width / add.image.img.naturalWidth;
      const x = (e.clientX - rect.left) * (addCanvas.width / rect.width) / scale;
      const y = (e.clientY - rect.top) * (addCanvas.height / rect.height) / scale;
      add.faces.forEach(function (f, i) { if (x >= f.bbox[0] && x <= f.bbox[2] && y >= f.bbox[1] && y <= f.bbox[3]) choose(i); });
    });

    function chosenImage() {
      if (add.faces.length < 2) return add.image.b64;
      const img = add.image.img;
      const b = add.faces[add.chosen].bbox;
      const pad = MARGIN * Math.max(b[2] - b[0], b[3] - b[1]);
      const x0 = Math.max(0, Math.floor(b[0] - pad)), y0 = Math.max(0, Math.floor(b[1] - pad));
      const x1 = Math.min(img.naturalWidth, Math.ceil(b[2] + pad)), y1 = Math.min(img.naturalHeight, Math.ceil(b[3] + pad));
      const crop = document.createElement('canvas');
      crop.width = x1 - x0;
      crop.height = y1 - y0;
      crop.getContext('2d').drawImage(img, x0, y0, crop.width, crop.height, 0, 0, crop.width, crop.height);
      const url = crop.toDataURL('image/jpeg', 0.95);
      return url.slice(url.indexOf(',') + 1);
    }

    document.getElementById('add-form').addEventListener('submit', async function (e) {
      e.preventDefault();
      const label = document.getElementById('add-label').value.trim();
      if (!add.image || !label) return;
      addRun.disabled = true;
      const answer = await VP.post(paths.add, {group_id: state.index, user_id: label, image: chosenImage()});
      addRun.disabled = false;
      if (fail(answer, 'add')) return;
      const r = answer.json.result;
      VP.say(msg, 'added face ' + r.face_id + ' as ' + r.user_id + ' to ' + r.group_id + (r.face_found ? '' : ' (no face found: the whole image was stored)'), 'ok');
      state.label = '';
      document.getElementById('label-filter').value = '';
      document.getElementById('index-new').value = '';
      load();
    });

    VP.fileInput(document.getElementById('search-file'), async function (file) {
      let image;
      try { image = await VP.readImage(file); } catch (e) { VP.say(msg, String(e.message || e), 'error'); return; }
      const answer = await VP.post(paths.search, {image: image.b64, indexKey: state.index, visualize: false});
      const list = document.getElementById('search-list');
      if (fail(answer, 'search')) return;
      const summary = VP.draw.faces(document.getElementById('search-canvas'), image.img, answer.json, list, {maxW: 480, maxH: 360});
      VP.say(msg, 'searched ' + state.index + ': ' + summary, 'ok');
    });

    load();
  };
})();
