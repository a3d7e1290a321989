// The prompt box: a plain textarea synced on every keystroke; Ctrl+Enter
// (Cmd+Enter) sends {submit} to the kernel, which runs Process.
function render({ model, el }) {
  const ta = document.createElement("textarea");
  ta.className = "gridllm-prompt-input";
  ta.rows = 4;
  ta.spellcheck = true;
  el.appendChild(ta);
  const sync = () => {
    const v = model.get("value") || "";
    if (ta.value !== v) ta.value = v;  // never while it is the same: the caret stays put
    ta.placeholder = model.get("placeholder") || "";
    ta.disabled = !!model.get("disabled");
  };
  ta.addEventListener("input", () => { model.set("value", ta.value); model.save_changes(); });
  ta.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !(e.ctrlKey || e.metaKey) || e.isComposing) return;
    // Ctrl+Enter / Cmd+Enter runs Process, not the notebook cell around the panel.
    e.preventDefault();
    e.stopPropagation();
    model.set("value", ta.value);
    model.save_changes();
    model.send({ submit: ta.value });
  });
  model.on("change:value change:placeholder change:disabled", sync);
  sync();
}
export default { render };
