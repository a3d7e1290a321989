// What every text widget shares (StreamText, the card). `initialize` applies the
// kernel's messages to the model ({append, at}, {reset}, {set}) without
// save_changes (the kernel already knows), and asks for a reset when it finds
// itself out of step. `textNode` shows the model's text in a DOM text node:
// appended data, never markup.
function initialize({ model }) {
  let waiting = false;
  const text = () => model.get("text") || "";
  const onMsg = (msg) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.set && typeof msg.set === "object") {
      for (const [k, v] of Object.entries(msg.set)) model.set(k, v);
    }
    if (typeof msg.reset === "string") {
      waiting = false;
      model.set("text", msg.reset);
    } else if (typeof msg.append === "string" && !waiting) {
      const t = text();
      if (msg.at === t.length) model.set("text", t + msg.append);
      else { waiting = true; model.send({ resync: t.length }); }
    }
  };
  model.on("msg:custom", onMsg);
  model.send({ have: text().length });
  return () => model.off("msg:custom", onMsg);
}
function textNode(model, pre) {
  const node = document.createTextNode(model.get("text") || "");
  pre.appendChild(node);
  model.on("change:text", () => {
    const t = model.get("text") || "", shown = node.data;
    if (t.length >= shown.length && t.startsWith(shown)) node.appendData(t.slice(shown.length));
    else node.data = t;
  });
}
