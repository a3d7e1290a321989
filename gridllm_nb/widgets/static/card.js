// The card's view: tag, state badge, a clock that ticks here (the kernel sends
// the elapsed time once, at the end), an error line, and the answer: a DOM text
// node (never markup) or, in markdown mode, HTML the kernel has sanitized.
// A card that ended without an answer shows a Retry button while its owner offers one
// (can_retry): the click is a message to the kernel, which decides what to do.
const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out", "lost"]);
const RETRYABLE = new Set(["failed", "cancelled", "timed_out", "lost"]);
function part(tag, cls, parent) {
  const e = document.createElement(tag);
  e.className = cls;
  parent.appendChild(e);
  return e;
}
function render({ model, el }) {
  el.classList.add("gridllm-card");
  const head = part("div", "gridllm-card-head", el);
  const title = part("b", "gridllm-card-tag", head);
  const retitle = () => { title.textContent = model.get("tag"); };  // the arena names a card after the vote
  model.on("change:tag", retitle);
  retitle();
  const badge = part("span", "gridllm-badge", head);
  const clock = part("span", "gridllm-elapsed", head);
  const finish = part("span", "gridllm-finish", head);
  const retry = part("button", "gridllm-retry", head);
  retry.type = "button";
  retry.textContent = "Retry";
  retry.title = "Ask this model again, with the same prompt and options";
  retry.setAttribute("aria-label", `Retry ${model.get("tag")}`);
  retry.addEventListener("click", () => model.send({ event: "retry" }));
  // Enter and Space press the button, and nothing else: not the notebook's shortcuts around it.
  retry.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") e.stopPropagation(); });
  const error = part("div", "gridllm-error", el);
  const body = part("div", "gridllm-body", el);
  const pre = part("pre", "gridllm-text", body);
  const md = part("div", "gridllm-markdown-view", body);
  const stats = part("div", "gridllm-stats", el);  // one muted line, sent once the answer ended
  const checks = part("div", "gridllm-checks", el);  // a line per verdict, as text: ✓ pass, ✗ fail, … judging
  // Follow the end while the reader is at the end; leave them where they scrolled to otherwise.
  let following = true;
  body.addEventListener("scroll", () => {
    following = body.scrollTop + body.clientHeight >= body.scrollHeight - 8;
  });
  const follow = () => { if (following) body.scrollTop = body.scrollHeight; };
  textNode(model, pre);
  model.on("change:text", follow);
  let shownState = null, since = performance.now();
  const tick = () => {
    const live = !TERMINAL.has(model.get("state"));
    const t = (model.get("elapsed") || 0) + (live ? (performance.now() - since) / 1000 : 0);
    clock.textContent = live ? `${Math.floor(t)} s` : `${t.toFixed(1)} s`;
  };
  const sync = () => {
    const state = model.get("state");
    if (state !== shownState) {
      if (shownState) el.classList.remove(`gridllm-state-${shownState}`);
      el.classList.add(`gridllm-state-${state}`);
      badge.textContent = state.replace("_", " ");
      shownState = state;
    }
    error.textContent = model.get("error") || "";
    error.style.display = model.get("error") ? "" : "none";
    finish.textContent = model.get("finish") || "";
    retry.style.display = model.get("can_retry") && RETRYABLE.has(state) ? "" : "none";
    stats.textContent = model.get("stats") || "";
    stats.style.display = model.get("stats") ? "" : "none";
    const verdicts = model.get("checks") || "";
    checks.replaceChildren(...verdicts.split("\n").filter(Boolean).map((line) => {
      const row = document.createElement("div");
      row.className = `gridllm-check gridllm-check-${{"✓": "pass", "✗": "fail"}[line[0]] || "pending"}`;
      row.textContent = row.title = line;
      return row;
    }));
    checks.style.display = verdicts ? "" : "none";
    const markdown = model.get("markdown");
    pre.style.display = markdown ? "none" : "";
    md.style.display = markdown ? "" : "none";
    if (markdown) md.innerHTML = model.get("html") || "";  // sanitized by the kernel
    follow();
  };
  model.on("change:state change:error change:markdown change:html change:finish change:stats change:can_retry change:checks", sync);
  let wasLive = true;
  model.on("change:state", () => {
    const live = !TERMINAL.has(model.get("state"));
    if (live && !wasLive) since = performance.now();  // a new answer: the clock starts again
    wasLive = live;
    tick();
  });
  model.on("change:elapsed", () => { since = performance.now(); tick(); });
  sync();
  tick();
  const timer = setInterval(tick, 1000);
  return () => clearInterval(timer);
}
export default { initialize, render };
