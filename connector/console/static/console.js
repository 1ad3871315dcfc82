// The mapping editor checks the text while the admin types: the server validates it (as `mapping check`
// does) and answers with the result and preview as HTML, which replaces the result region.
(function () {
  var area = document.getElementById("mapping-text");
  var out = document.getElementById("mapping-result");
  if (!area || !out) return;
  var form = area.form, timer = null, seq = 0;
  function check() {
    var mine = ++seq;
    fetch(form.dataset.checkUrl, {method: "POST", body: new FormData(form), credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) { if (mine === seq) out.innerHTML = html; });
  }
  area.addEventListener("input", function () {
    var stale = document.getElementById("save-refused");  // about the text as it was when saving failed
    if (stale) stale.remove();
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });
})();
