/* visionpack console: drawing an answer over its image on a canvas, and listing it.
   Labels go onto the canvas with fillText and into lists with textContent: an answer's text is
   never parsed as HTML. */
'use strict';
(function () {
  const VP = window.VP = window.VP || {};
  // COCO-17 limbs (0-based keypoint indices), as PaddleX's keypoint visualiser draws them.
  const LIMBS = [[15, 13], [13, 11], [16, 14], [14, 12], [11, 12], [5, 11], [6, 12], [5, 6], [5, 7], [6, 8],
    [7, 9], [8, 10], [1, 2], [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6]];
  const KPT_SHOWN = 0.2; // a joint below this score is drawn faint, its limbs dashed
  const COLOURS = ['#2563eb', '#db2777', '#16a34a', '#ea580c', '#7c3aed', '#0891b2'];

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }
  function pct(v) { return (num(v) * 100).toFixed(1) + '%'; }

  /* The image on the canvas, scaled to fit maxW x maxH; returns the scale. */
  function fit(canvas, img, maxW, maxH) {
    const scale = Math.min(1, maxW / img.naturalWidth, maxH / img.naturalHeight);
    canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    canvas.dataset.drawn = '0';
    return scale;
  }

  function tag(ctx, text, x, y, colour) {
    ctx.font = '600 13px system-ui, sans-serif';
    const w = ctx.measureText(text).width + 8;
    const top = Math.max(0, y - 18);
    x = Math.max(0, Math.min(x, ctx.canvas.width - w)); // a label near the right edge stays readable
    ctx.fillStyle = colour;
    ctx.fillRect(x, top, w, 18);
    ctx.fillStyle = '#fff';
    ctx.fillText(text, x + 4, top + 13);
  }

  function box(ctx, b, scale, colour, width) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width || 2;
    ctx.strokeRect(num(b[0]) * scale, num(b[1]) * scale, (num(b[2]) - num(b[0])) * scale, (num(b[3]) - num(b[1])) * scale);
  }

  function clear(list) { while (list && list.firstChild) list.removeChild(list.firstChild); }

  /* Classification (EasyDL ImageClassification): top-k bars in the list, the best on the image. */
  function classes(canvas, img, json, list) {
    const results = Array.isArray(json && json.results) ? json.results : [];
    fit(canvas, img, 640, 480);
    clear(list);
    results.forEach(function (r, i) {
      const fill = VP.el('span', {class: 'fill'});
      fill.style.width = Math.max(0, Math.min(100, num(r.score) * 100)) + '%';
      list.appendChild(VP.el('li', {class: 'bar'}, [
        VP.el('span', {class: 'name', text: String(r.name)}),
        VP.el('span', {class: 'track'}, [fill]),
        VP.el('span', {class: 'score', text: pct(r.score)}),
      ]));
      if (i === 0) tag(canvas.getContext('2d'), String(r.name) + ' ' + pct(r.score), 0, 18, COLOURS[0]);
    });
    canvas.dataset.drawn = String(results.length);
    return results.length + ' class' + (results.length === 1 ? '' : 'es');
  }

  /* Keypoints (PaddleX human-keypoint-detection): a skeleton per person, with its scores. */
  function persons(canvas, img, json, list) {
    const people = Array.isArray(json && json.result && json.result.persons) ? json.result.persons : [];
    const scale = fit(canvas, img, 640, 480);
    const ctx = canvas.getContext('2d');
    clear(list);
    people.forEach(function (p, i) {
      const colour = COLOURS[i % COLOURS.length];
      const k = Array.isArray(p.kpts) ? p.kpts : [];
      box(ctx, p.bbox || [0, 0, 0, 0], scale, colour, 1);
      ctx.lineWidth = 3;
      LIMBS.forEach(function ([a, b]) {
        if (!k[a] || !k[b]) return;
        const weak = num(k[a][2]) < KPT_SHOWN || num(k[b][2]) < KPT_SHOWN;
        ctx.setLineDash(weak ? [4, 4] : []);
        ctx.globalAlpha = weak ? 0.4 : 1;
        ctx.strokeStyle = colour;
        ctx.beginPath();
        ctx.moveTo(num(k[a][0]) * scale, num(k[a][1]) * scale);
        ctx.lineTo(num(k[b][0]) * scale, num(k[b][1]) * scale);
        ctx.stroke();
      });
      ctx.setLineDash([]);
      k.forEach(function (pt) {
        ctx.globalAlpha = num(pt[2]) < KPT_SHOWN ? 0.35 : 1;
        ctx.fillStyle = '#fff';
        ctx.beginPath();
        ctx.arc(num(pt[0]) * scale, num(pt[1]) * scale, 4, 0, 2 * Math.PI);
        ctx.fill();
        ctx.strokeStyle = colour;
        ctx.lineWidth = 2;
        ctx.stroke();
      });
      ctx.globalAlpha = 1;
      const b = p.bbox || [0, 0];
      tag(ctx, 'person ' + (i + 1) + ' · det ' + num(p.detScore).toFixed(2) + ' · kpt ' + num(p.kptScore).toFixed(2),
        num(b[0]) * scale, num(b[1]) * scale, colour);
      const joints = k.filter(function (pt) { return num(pt[2]) >= KPT_SHOWN; }).length;
      list.appendChild(VP.el('li', {text: 'person ' + (i + 1) + ': detector ' + num(p.detScore).toFixed(3) +
        ', keypoints ' + num(p.kptScore).toFixed(3) + ' (' + joints + ' of ' + k.length + ' joints above ' + KPT_SHOWN + ')'}));
    });
    canvas.dataset.drawn = String(people.length);
    return people.length + ' person' + (people.length === 1 ? '' : 's');
  }

  /* Faces (PaddleX face-recognition-infer): boxes with the best label and score; unknowns red.
     opts.numbered: "1", "2"... before each label; opts.selected: that face drawn thicker. */
  function faces(canvas, img, json, list, opts) {
    const found = Array.isArray(json && json.result && json.result.faces) ? json.result.faces : [];
    const scale = fit(canvas, img, (opts && opts.maxW) || 640, (opts && opts.maxH) || 480);
    const ctx = canvas.getContext('2d');
    clear(list);
    found.forEach(function (f, i) {
      const best = Array.isArray(f.recResults) && f.recResults.length ? f.recResults[0] : null;
      const colour = best ? '#16a34a' : '#dc2626';
      const selected = opts && opts.selected === i;
      const prefix = opts && opts.numbered ? (i + 1) + ': ' : '';
      const text = best ? String(best.label) + ' ' + num(best.score).toFixed(2) : 'unknown';
      box(ctx, f.bbox || [0, 0, 0, 0], scale, colour, selected ? 5 : 2);
      tag(ctx, prefix + text, num((f.bbox || [0])[0]) * scale, num((f.bbox || [0, 0])[1]) * scale, colour);
      const others = best ? f.recResults.slice(1).map(function (h) { return String(h.label) + ' ' + num(h.score).toFixed(3); }) : [];
      if (list) list.appendChild(VP.el('li', {class: best ? 'known' : 'unknown', text: prefix + (best ?
        String(best.label) + ' (similarity ' + num(best.score).toFixed(3) + ')' : 'unknown face') +
        ', detector ' + num(f.score).toFixed(3) + (others.length ? '; also ' + others.join(', ') : '')}));
    });
    canvas.dataset.drawn = String(found.length);
    return found.length + ' face' + (found.length === 1 ? '' : 's');
  }

  VP.draw = {fit: fit, classes: classes, persons: persons, faces: faces};
})();
