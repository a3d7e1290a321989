// A widget that only carries a style sheet (anywidget adds it to the page once
// per widget class): it takes no room where it sits.
function render({ el }) {
  el.style.display = "none";
}
export default { render };
