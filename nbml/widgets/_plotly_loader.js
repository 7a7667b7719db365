// The ES module of nbml's plotly figures: a few hundred bytes instead of plotly's 5 MB widget bundle, which
// anywidget would otherwise store in every saved notebook. The bundle is loaded once per page: from the nbml
// server extension (a cached, authenticated URL) when the page has it, else from the kernel as one message.
const KEY = "__nbml_plotly_widget_bundle";
const BUNDLE_MSG = "nbml:plotly-bundle";

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
  return new Promise((resolve, reject) => {
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== BUNDLE_MSG) return;
      model.off("msg:custom", onMsg);
      const url = URL.createObjectURL(new Blob([buffers[0]], { type: "text/javascript" }));
      import(url).then(resolve, reject);
    };
    model.on("msg:custom", onMsg);
    model.send({ type: BUNDLE_MSG });
  });
}

function bundle(model) {
  if (!globalThis[KEY]) {
    globalThis[KEY] = fromServer().catch(() => fromKernel(model));
    globalThis[KEY].catch(() => { delete globalThis[KEY]; });
  }
  return globalThis[KEY];
}

export default async () => {
  let inner = null;  // plotly's widget for this model (its factory keeps per-model state)
  return {
    async initialize(ctx) {
      const mod = await bundle(ctx.model);
      inner = typeof mod.default === "function" ? await mod.default() : mod.default;
      return inner.initialize ? inner.initialize(ctx) : undefined;
    },
    render(ctx) {
      return inner && inner.render ? inner.render(ctx) : undefined;
    },
  };
};
