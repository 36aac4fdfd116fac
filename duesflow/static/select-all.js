// "Select all" for lists with checkboxes: the box marked data-select-all="NAME" ticks every box named NAME
// in its form. No inline script (the Content-Security-Policy forbids it).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-select-all]").forEach(function (master) {
    var form = master.form;
    var boxes = form.querySelectorAll('input[type=checkbox][name="' + master.dataset.selectAll + '"]');
    function sync() {
      var ticked = Array.prototype.filter.call(boxes, function (box) { return box.checked; }).length;
      master.checked = ticked === boxes.length && boxes.length > 0;
      master.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    master.addEventListener("change", function () {
      boxes.forEach(function (box) { box.checked = master.checked; });
    });
    boxes.forEach(function (box) { box.addEventListener("change", sync); });
    sync();
  });
});
