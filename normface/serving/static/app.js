// The normface page: uploads photos to this server's API and shows what comes back.
// Everything is local (no CDN): the 3-D viewer is the vendored model-viewer.

const results = document.getElementById("results");
const resultTemplate = document.getElementById("result-template");
const faceTemplate = document.getElementById("face-template");
let avatarAvailable = false;
let pending = 0;

function setBusy(delta) {
  pending += delta;
  document.body.dataset.busy = pending > 0 ? "true" : "false";
}

async function describeModel() {
  const line = document.getElementById("model-line");
  const response = await fetch("/v1/model");
  const model = await response.json();
  avatarAvailable = model.applications.avatar;
  line.textContent = `model ${model.name}: ${model.output_size}x${model.output_size} faces, encoder ${model.encoder_id}; ` +
    `up to ${model.limits.max_files} photos of ${Math.round(model.limits.max_file_bytes / 1048576)} MB per request`;
  const note = document.getElementById("avatar-note");
  if (!avatarAvailable) {
    note.hidden = false;
    note.textContent = "No 3-D avatar on this server: " + (model.applications.avatar_missing || "not available");
  }
  document.body.dataset.ready = "true";
}

function drawLandmarks(canvas, image, landmarks) {
  canvas.width = image.naturalWidth * 2;
  canvas.height = image.naturalHeight * 2;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#00ff00";
  for (const [x, y] of landmarks) {
    ctx.beginPath();
    ctx.arc(x * 2, y * 2, 2.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  canvas.dataset.drawn = String(landmarks.length);
}

function stem(name) {
  return name.replace(/\.[^.]*$/, "");
}

function showError(card, text) {
  const status = card.querySelector(".status");
  status.textContent = text;
  status.classList.add("error");
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error || response.statusText;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

function post(path, file) {
  const form = new FormData();
  form.append("files", file, file.name);
  return fetch(path, { method: "POST", body: form });
}

async function normalizeOne(file, card, allFaces) {
  const form = new FormData();
  form.append("files", file, file.name);
  const response = await fetch(`/v1/normalize?all_faces=${allFaces}`, { method: "POST", body: form });
  if (!response.ok) {
    showError(card, await errorText(response));
    return false;
  }
  const body = await response.json();
  const entry = body.files[0];
  if (entry.status !== "ok") {
    showError(card, entry.error);
    return false;
  }
  const slot = card.querySelector(".face-slot");
  for (const face of entry.faces) {
    const node = faceTemplate.content.firstElementChild.cloneNode(true);
    const src = "data:image/png;base64," + face.image_png_base64;
    const img = node.querySelector("img.normalized");
    img.addEventListener("load", () => drawLandmarks(node.querySelector("canvas.landmarks"), img, face.landmarks));
    img.src = src;
    node.querySelector(".confidence").textContent =
      `face ${face.face_index + 1} of ${face.num_faces}; confidence (encoder distance to the input, lower is better, ` +
      `< 0.6 same person): ${face.confidence.toFixed(3)}`;
    const png = node.querySelector(".png-download");
    png.href = src;
    png.download = `${stem(file.name)}_face${face.face_index}.png`;
    const json = node.querySelector(".json-download");
    const { image_png_base64, ...fields } = face;
    json.href = URL.createObjectURL(new Blob([JSON.stringify(fields, null, 1)], { type: "application/json" }));
    json.download = `${stem(file.name)}_face${face.face_index}.json`;
    slot.appendChild(node);
  }
  card.querySelector(".status").textContent = `${entry.faces.length} face(s)`;
  return true;
}

// POSTs the photo to an endpoint that answers with a file; its object URL, or null after showing
// the error on the card.
async function fileUrl(path, file, card, what) {
  const response = await post(path, file);
  if (!response.ok) {
    showError(card, `${what}: ` + await errorText(response));
    return null;
  }
  return URL.createObjectURL(await response.blob());
}

async function adjustOne(file, card) {
  const url = await fileUrl("/v1/adjust", file, card, "colour correction");
  if (!url) return;
  const figure = card.querySelector(".adjusted-figure");
  figure.querySelector("img.adjusted").src = url;
  const link = figure.querySelector(".adjusted-download");
  link.href = url;
  link.download = `${stem(file.name)}_adjusted.png`;
  figure.hidden = false;
}

async function avatarOne(file, card) {
  const url = await fileUrl("/v1/avatar", file, card, "avatar");
  if (!url) return;
  const figure = card.querySelector(".avatar-figure");
  const viewer = document.createElement("model-viewer");
  viewer.setAttribute("camera-controls", "");
  viewer.setAttribute("alt", "3-D avatar of the normalized face");
  viewer.setAttribute("exposure", "1");
  viewer.setAttribute("interaction-prompt", "none");
  viewer.setAttribute("loading", "eager");  // load even when scrolled out of view
  viewer.addEventListener("load", () => { viewer.dataset.loaded = "true"; });
  viewer.addEventListener("error", (event) => console.error("the 3-D viewer could not show the avatar", event.detail));
  viewer.src = url;
  figure.querySelector(".viewer-slot").appendChild(viewer);
  const glb = figure.querySelector(".glb-download");
  glb.href = url;
  glb.download = `${stem(file.name)}_avatar.glb`;
  const obj = figure.querySelector(".obj-download");
  obj.href = "#";
  obj.addEventListener("click", async (event) => {
    if (obj.dataset.ready) return;
    event.preventDefault();
    const r = await fetch("/v1/avatar?format=obj", { method: "POST", body: (() => { const f = new FormData(); f.append("files", file, file.name); return f; })() });
    obj.href = URL.createObjectURL(await r.blob());
    obj.download = `${stem(file.name)}_avatar.obj`;
    obj.dataset.ready = "true";
    obj.click();
  });
  figure.hidden = false;
}

async function handle(file) {
  const card = resultTemplate.content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  card.querySelector("img.input").src = URL.createObjectURL(file);
  results.prepend(card);
  setBusy(1);
  try {
    const allFaces = document.getElementById("all-faces").checked;
    const ok = await normalizeOne(file, card, allFaces);
    if (ok && document.getElementById("with-extras").checked) {
      await adjustOne(file, card);
      if (avatarAvailable) await avatarOne(file, card);
    }
  } catch (err) {
    showError(card, `${file.name}: ${err}`);
  } finally {
    setBusy(-1);
  }
}

function handleFiles(files) {
  for (const file of files) handle(file);
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  handleFiles(e.dataTransfer.files);
});
document.getElementById("file-input").addEventListener("change", (e) => {
  handleFiles(e.target.files);
  e.target.value = "";
});
describeModel().catch((err) => {
  document.getElementById("model-line").textContent = "cannot reach the server: " + err;
});
