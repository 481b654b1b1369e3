// The annotation page: a grid of proposed crops, composed from their channels in the browser (toggles, contrast),
// labelled with the keyboard or the buttons; every label is POSTed and shown as saved only when the server answers
// (after FILE was renamed into place). Served by src/annotate/server.ts; nothing is loaded from elsewhere.

const BATCH = 24;
const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9'];
const app = {
  state: null,
  cards: [],
  focus: 0,
  on: [],
  gain: 1,
  zoom: 1.5,
  busy: Promise.resolve(),
};
// exposed for tests and the curious: what the page knows
globalThis.qcbenchAnnotate = app;

const $ = (id) => document.getElementById(id);

function colours(C) {
  if (C === 1) return [[1, 1, 1]];
  if (C === 2) {
    return [
      [1, 0, 1],
      [0, 1, 0],
    ];
  }
  return Array.from({ length: C }, (_, c) => (c < 3 ? [0, 1, 2].map((k) => (k === c ? 1 : 0)) : [0.5, 0.5, 0.5]));
}

function setStatus(text, error) {
  const s = $('status');
  s.textContent = text;
  s.className = error ? 'error' : '';
}

async function api(path, body) {
  const res = await fetch(
    path,
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) },
  );
  const value = await res.json();
  if (!res.ok) throw new Error(`${value.error}${value.fix ? ` — ${value.fix}` : ''}`);
  return value;
}

function showCounts(c) {
  const t = c.targets;
  const types = Object.entries(c.byType)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const bar = (name, n, of) =>
    `<span class="bar ${n >= of ? 'done' : ''}" data-count="${name}">${name} ${n} / ${of}</span>`;
  $('counts').innerHTML =
    bar('abnormal', c.abnormal, t.abnormal) +
    bar('normal', c.normal, t.normal) +
    `<span class="bar">skipped ${c.skipped}</span><span class="bar">${types ? `types: ${types}` : ''}</span>`;
  app.state.counts = c;
}

function labelText(card) {
  if (card.label === 'normal') return 'normal';
  if (card.label === 'abnormal') return `abnormal: ${card.artefact_type}`;
  if (card.label === 'skip') return 'skipped';
  return '';
}

function draw(card) {
  const S = app.state.size;
  const C = app.state.channels.length;
  const canvas = card.canvas;
  const px = Math.round(S * app.zoom);
  canvas.style.width = `${px}px`;
  canvas.style.height = `${px}px`;
  if (!card.planes) return;
  const ctx = canvas.getContext('2d');
  const out = ctx.createImageData(S, S);
  const col = colours(C);
  for (let i = 0; i < S * S; i++) {
    let r = 0;
    let g = 0;
    let b = 0;
    for (let c = 0; c < C; c++) {
      if (!app.on[c]) continue;
      const v = card.planes[c][i] * app.gain;
      r += col[c][0] * v;
      g += col[c][1] * v;
      b += col[c][2] * v;
    }
    out.data[i * 4] = Math.min(255, r);
    out.data[i * 4 + 1] = Math.min(255, g);
    out.data[i * 4 + 2] = Math.min(255, b);
    out.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
}

function loadCrop(card) {
  const img = new Image();
  img.onload = () => {
    const S = app.state.size;
    const C = app.state.channels.length;
    const c2 = document.createElement('canvas');
    c2.width = S * C;
    c2.height = S;
    const ctx = c2.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, S * C, S).data;
    card.planes = Array.from({ length: C }, (_, c) => {
      const p = new Uint8Array(S * S);
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) p[y * S + x] = data[(y * S * C + c * S + x) * 4];
      return p;
    });
    draw(card);
  };
  img.src = `/api/crop/${card.index}.png`;
}

function renderCard(card) {
  card.el.dataset.label = card.label ?? '';
  card.el.dataset.saved = card.saved ? '1' : '0';
  card.el.classList.toggle('pending', !!card.pending);
  card.el.querySelector('.lab').textContent = labelText(card);
}

function addCard(info, atStart) {
  const S = app.state.size;
  const el = document.createElement('div');
  el.className = 'card';
  el.dataset.index = String(info.index);
  el.dataset.cropId = info.crop_id;
  const canvas = document.createElement('canvas');
  canvas.width = S;
  canvas.height = S;
  el.append(canvas);
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.textContent = `${info.plate} ${info.well} s${info.site} (${info.x}, ${info.y})`;
  el.append(meta);
  const lab = document.createElement('div');
  lab.className = 'lab';
  el.append(lab);
  const card = { ...info, el, canvas, planes: null, saved: info.label !== null, pending: false };
  el.addEventListener('click', () => setFocus(app.cards.indexOf(card)));
  if (atStart) {
    $('grid').prepend(el);
    app.cards.unshift(card);
  } else {
    $('grid').append(el);
    app.cards.push(card);
  }
  draw(card);
  renderCard(card);
  loadCrop(card);
  return card;
}

function setFocus(k) {
  if (app.cards.length === 0) return;
  app.focus = Math.max(0, Math.min(app.cards.length - 1, k));
  app.cards.forEach((c, j) => {
    c.el.classList.toggle('focus', j === app.focus);
  });
  const card = app.cards[app.focus];
  card.el.scrollIntoView({ block: 'nearest' });
  const f = $('field');
  f.src = `/api/field/${card.index}.png`;
  $('info').textContent =
    `${card.crop_id} · plate ${card.plate}, well ${card.well}, site ${card.site}, centre (${card.x}, ${card.y})`;
  fetch(`/api/field/${card.index}.png`, { method: 'HEAD' })
    .then((r) => {
      $('fieldnote').textContent =
        r.headers.get('X-Field-Source') === 'crops'
          ? "field image not reachable: the field's crops at their positions"
          : 'the field (downscaled), crop outlined in yellow';
    })
    .catch(() => {});
}

async function loadMore() {
  const shown = app.cards.map((c) => c.index).join(',');
  const { crops } = await api(`/api/next?n=${BATCH}&exclude=${shown}`);
  // a new screen: drop the cards already dealt with
  for (const c of app.cards) c.el.remove();
  app.cards = [];
  for (const info of crops) addCard(info, false);
  if (crops.length === 0) setStatus('no more crops to propose');
  setFocus(0);
}

function advance() {
  const n = app.cards.length;
  for (let d = 1; d <= n; d++) {
    const k = (app.focus + d) % n;
    if (!app.cards[k].label) return setFocus(k);
  }
  // every card is labelled or skipped: next screen once the saves are done
  app.busy = app.busy.then(loadMore);
}

function act(kind, artefact) {
  const card = app.cards[app.focus];
  if (!card) return;
  const before = { label: card.label, artefact_type: card.artefact_type, saved: card.saved };
  if (kind === 'skip') card.label = 'skip';
  else {
    card.label = kind;
    card.artefact_type = kind === 'normal' ? 'none' : artefact;
  }
  card.saved = false;
  card.pending = true;
  renderCard(card);
  const body =
    kind === 'skip' ? { index: card.index } : { index: card.index, label: kind, artefact_type: card.artefact_type };
  app.busy = app.busy.then(async () => {
    try {
      const r = await api(kind === 'skip' ? '/api/skip' : '/api/label', body);
      card.pending = false;
      card.saved = kind !== 'skip';
      renderCard(card);
      showCounts(r.counts);
      setStatus(kind === 'skip' ? `skipped ${card.crop_id}` : `saved ${card.crop_id}: ${labelText(card)}`);
    } catch (e) {
      Object.assign(card, before, { pending: false });
      renderCard(card);
      setStatus(`not saved: ${e.message}`, true);
    }
  });
  advance();
}

function undo() {
  app.busy = app.busy.then(async () => {
    try {
      const r = await api('/api/undo', {});
      showCounts(r.counts);
      if (!r.undone) return setStatus('nothing to undo');
      let card = app.cards.find((c) => c.index === r.undone.index);
      if (!card) card = addCard(r.undone, true);
      Object.assign(card, { label: r.undone.label, artefact_type: r.undone.artefact_type });
      card.saved = r.undone.label !== null;
      renderCard(card);
      setFocus(app.cards.indexOf(card));
      setStatus(`undone: ${card.crop_id}`);
    } catch (e) {
      setStatus(`undo failed: ${e.message}`, true);
    }
  });
}

function buildControls() {
  const st = app.state;
  const col = colours(st.channels.length);
  app.on = st.channels.map(() => true);
  $('channels').innerHTML = '';
  st.channels.forEach((name, c) => {
    const l = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = true;
    box.dataset.channel = String(c);
    box.addEventListener('change', () => {
      app.on[c] = box.checked;
      app.cards.forEach(draw);
    });
    const rgb = col[c].map((v) => Math.round(110 + v * 145)).join(',');
    l.append(box, ` ${name} `);
    l.style.color = `rgb(${rgb})`;
    $('channels').append(l);
  });
  $('contrast').addEventListener('input', (e) => {
    app.gain = Number(e.target.value);
    app.cards.forEach(draw);
  });
  $('zoom').addEventListener('input', (e) => {
    app.zoom = Number(e.target.value);
    app.cards.forEach(draw);
  });
  const actions = $('actions');
  const button = (text, key, cls, fn) => {
    const b = document.createElement('button');
    b.innerHTML = `${text} <kbd>${key}</kbd>`;
    b.className = cls;
    b.addEventListener('click', fn);
    actions.append(b);
  };
  button('normal', 'n', 'normal', () => act('normal'));
  st.artefactTypes.forEach((t, i) => {
    button(t, KEYS[i], 'abnormal', () => act('abnormal', t));
  });
  button('skip', 's', '', () => act('skip'));
  button('undo', 'u', '', undo);
  $('keys').innerHTML = [
    '<kbd>n</kbd> or <kbd>0</kbd> normal',
    ...st.artefactTypes.map((t, i) => `<kbd>${KEYS[i]}</kbd> abnormal: ${t}`),
    '<kbd>s</kbd> skip · <kbd>u</kbd> or <kbd>Backspace</kbd> undo',
    '<kbd>←</kbd> <kbd>→</kbd> move · <kbd>+</kbd> <kbd>−</kbd> contrast · <kbd>Shift</kbd>+digit toggles channel',
  ].join('<br>');
}

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || !app.state) return;
  const types = app.state.artefactTypes;
  const digit = /^Digit([0-9])$/.exec(e.code);
  if (e.shiftKey && digit) {
    const c = Number(digit[1]) - 1;
    const box = document.querySelector(`input[data-channel="${c}"]`);
    if (box) {
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    }
    return;
  }
  const k = e.key;
  if (k === 'n' || k === '0') act('normal');
  else if (KEYS.includes(k) && Number(k) <= types.length) act('abnormal', types[Number(k) - 1]);
  else if (k === 's') act('skip');
  else if (k === 'u' || k === 'Backspace') undo();
  else if (k === 'ArrowRight') setFocus(app.focus + 1);
  else if (k === 'ArrowLeft') setFocus(app.focus - 1);
  else if (k === '+' || k === '=') {
    $('contrast').value = String(Math.min(6, app.gain + 0.25));
    $('contrast').dispatchEvent(new Event('input'));
  } else if (k === '-') {
    $('contrast').value = String(Math.max(0.5, app.gain - 0.25));
    $('contrast').dispatchEvent(new Event('input'));
  } else return;
  e.preventDefault();
});

(async () => {
  try {
    app.state = await api('/api/state');
    const st = app.state;
    $('where').textContent = `${st.store} (${st.count} crops) → ${st.file} · proposals: ${st.suggest}`;
    buildControls();
    showCounts(st.counts);
    await loadMore();
    app.ready = true;
  } catch (e) {
    setStatus(`cannot start: ${e.message}`, true);
  }
})();
