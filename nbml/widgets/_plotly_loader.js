// The ES module of nbml's plotly figures: a couple of KB instead of plotly's 5 MB widget bundle, which anywidget
// would otherwise store in every saved notebook. The bundle is loaded once per page: from the nbml server
// extension (a cached, authenticated URL) when the page has it, else from the kernel in a few messages.
const BUNDLE_MSG = "nbml:plotly-bundle";
const FIRST_CHUNK_MS = 15000;
const state = (globalThis.__nbml_plotly_bundle ??= { server: null, kernel: null });

function baseUrl() {
  try {
    const el = document.getElementById("jupyter-config-data");
    if (el) return JSON.parse(el.textContent).baseUrl || "/";
  } catch (e) { /* not a Jupyter page */ }
  return "/";
}

async function fromServer() {
  const url = new URL(baseUrl() + "nbml/static/plotly-widgetbundle.js", window.location.origin);
  return await import(url.href);
}

function fromKernel(model) {
  // The kernel answers with the gzipped bundle in chunks (paced under Jupyter's iopub rate limit). A model
  // whose kernel doesn't answer (a restored output whose kernel is gone) gives up, so another can ask.
  return new Promise((resolve, reject) => {
    const chunks = [];
    let received = 0;
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error("no answer from the kernel"));
    }, FIRST_CHUNK_MS);
    model.on("msg:custom", (msg, buffers) => {
      if (done || !msg || msg.type !== BUNDLE_MSG) return;
      clearTimeout(timer);
      if (chunks[msg.index] === undefined) received += 1;
      chunks[msg.index] = buffers[0];
      if (received < msg.count) return;
      done = true;
      const stream = new Blob(chunks).stream().pipeThrough(new DecompressionStream("gzip"));
      new Response(stream).blob()
        .then((js) => import(URL.createObjectURL(new Blob([js], { type: "text/javascript" }))))
        .then(resolve, reject);
    });
    model.send({ type: BUNDLE_MSG });
  });
}

async function bundle(model) {
  state.server ??= fromServer();
  try {
    return await state.server;
  } catch (e) { /* this page has no nbml server extension */ }
  for (let attempt = 0; ; attempt++) {
    if (!state.kernel) {
      const asked = fromKernel(model);
      state.kernel = asked;
      asked.catch(() => { if (state.kernel === asked) state.kernel = null; });
    }
    try {
      return await state.kernel;
    } catch (e) {
      if (attempt >= 2) throw e;  // the shared request failed: ask again, through this model's kernel
    }
  }
}

// Updates the kernel sends as one-off messages through these attributes (set, then reset to null).
const PY2JS = ["addTraces", "deleteTraces", "moveTraces", "restyle", "relayout", "update", "animate",
               "removeLayoutProps", "removeTraceProps"].map((n) => "_py2js_" + n);

// anywidget gives initialize() two seconds, too short to fetch 5 MB from a busy kernel: initialize() only starts
// the load, and render() waits for it. plotly's own initialize runs once the bundle is there; the updates the
// kernel sent before that are kept in order and replayed to it then, so none is lost.
export default () => {
  let ready = null;
  return {
    initialize(ctx) {
      const model = ctx.model;
      let early = [];
      for (const attr of PY2JS) {
        model.on("change:" + attr, () => {
          const value = model.get(attr);
          if (early !== null && value !== null && value !== undefined) early.push([attr, value]);
        });
      }
      ready = bundle(model).then(async (mod) => {
        const inner = typeof mod.default === "function" ? await mod.default() : mod.default;
        if (inner.initialize) await inner.initialize(ctx);
        const missed = early;
        early = null;
        for (const [attr, value] of missed) {  // plotly's listeners read the attribute: show it, then clear it
          model.set(attr, value);
          model.set(attr, null);
        }
        return inner;
      });
      ready.catch((e) => console.error("nbml: plotly's widget bundle could not be loaded", e));
    },
    async render(ctx) {
      const inner = await ready;
      return inner.render ? inner.render(ctx) : undefined;
    },
  };
};
