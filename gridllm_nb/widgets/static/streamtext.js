// StreamText's view: a <pre> whose text grows by the kernel's deltas (deltas.js).
function render({ model, el }) {
  const pre = document.createElement("pre");
  pre.className = "gridllm-text";
  pre.style.whiteSpace = "pre-wrap";
  pre.style.margin = "0";
  textNode(model, pre);
  el.appendChild(pre);
}
export default { initialize, render };
