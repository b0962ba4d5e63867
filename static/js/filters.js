// Usage Statistics filter bar: the selects apply on a pointer choice (keyboard: on Apply or on
// leaving the control, WCAG 3.2.2), and the range picker. Without this file the bar is a plain
// GET form: radios for the presets, two dates and Apply.
(function () {
  "use strict";

  const form = document.getElementById("filters");
  if (!form) return;
  const apply = document.getElementById("apply");

  // Drop empty fields (and the picker's own day/span switch) so the URL carries only what was chosen.
  form.addEventListener("formdata", (event) => {
    for (const [name, value] of [...event.formData.entries()]) {
      if (value === "" || name === "range_mode") event.formData.delete(name);
    }
  });

  // --- API key and model -------------------------------------------------------------------
  let keyboard = false;
  const pending = new Set();
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Tab") keyboard = true;
  });
  form.addEventListener("pointerdown", () => {
    keyboard = false;
  });
  for (const control of [form.elements.api_key, form.elements.model]) {
    if (!control) continue;
    control.addEventListener("change", () => {
      if (!keyboard) return form.requestSubmit();
      pending.add(control);
      apply.classList.add("is-pending");
      apply.setAttribute("aria-describedby", "apply-hint");
      document.getElementById("apply-hint").hidden = false;
    });
    control.addEventListener("blur", () => {
      if (pending.has(control)) form.requestSubmit();
    });
  }

  // --- Range picker --------------------------------------------------------------------------
  // A button with the range in force opens a panel (a non-modal dialog): presets as radios (the
  // arrow keys move between them and nothing navigates), a custom day or span of days, Apply.
  // Escape, Cancel or a click outside close it unchanged and return focus to the button.
  const picker = document.getElementById("range-picker");
  if (!picker) return;
  const button = document.getElementById("range-button");
  const panel = document.getElementById("range-panel");
  const custom = document.getElementById("range-custom");
  const mode = document.getElementById("range-mode");
  const start = form.elements.start;
  const end = form.elements.end;
  const endField = document.getElementById("end-field");
  const error = document.getElementById("range-error");
  const presets = [...panel.querySelectorAll('input[name="preset"]')];
  const modes = [...mode.querySelectorAll('input[name="range_mode"]')];
  const applied = { preset: checkedValue(presets), start: start.value, end: end.value, mode: checkedValue(modes) };
  let pointer = false;

  function checkedValue(radios) {
    const checked = radios.find((radio) => radio.checked);
    return checked ? checked.value : null;
  }

  function check(radios, value) {
    radios.forEach((radio) => {
      radio.checked = radio.value === value;
    });
  }

  function showCustom() {
    const isCustom = checkedValue(presets) === "custom";
    custom.hidden = !isCustom;
    const oneDay = checkedValue(modes) === "day";
    endField.hidden = oneDay;
    document.getElementById("start-label").textContent = oneDay ? "Day" : "From";
  }

  function open() {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    picker.classList.add("is-open");
    showCustom();
    (presets.find((radio) => radio.checked) || presets[0]).focus();
  }

  // Closing without Apply puts back the range in force: the button always names what is shown.
  function close(returnFocus) {
    if (panel.hidden) return;
    check(presets, applied.preset);
    check(modes, applied.mode);
    start.value = applied.start;
    end.value = applied.end;
    error.hidden = true;
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    picker.classList.remove("is-open");
    if (returnFocus) button.focus();
  }

  function invalid(message, field) {
    if (panel.hidden) open();
    error.textContent = message;
    error.hidden = false;
    field.focus();
    return false;
  }

  // The URL keeps today's parameters: preset=<name>, or preset=custom&start=&end= (a single day
  // has start = end).
  function prepare() {
    const preset = checkedValue(presets);
    if (preset !== "custom") {
      start.value = "";
      end.value = "";
      return true;
    }
    if (!start.value) return invalid(checkedValue(modes) === "day" ? "Pick a day." : "Pick the first day.", start);
    if (checkedValue(modes) === "day" || !end.value) end.value = start.value;
    if (end.value < start.value) return invalid("The last day is before the first day.", end);
    return true;
  }

  function submit() {
    form.requestSubmit(document.getElementById("range-apply"));
  }

  picker.classList.add("is-enhanced");
  button.hidden = false;
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  picker.querySelector(".range-actions").hidden = false;
  mode.hidden = false;
  modes.forEach((radio) => {
    radio.disabled = false;
  });
  document.getElementById("range-help").textContent = "Local days of the tenant; the last day is included.";

  button.addEventListener("click", () => (panel.hidden ? open() : close(true)));
  document.getElementById("range-cancel").addEventListener("click", () => close(true));
  panel.addEventListener("pointerdown", () => {
    pointer = true;
  });
  panel.addEventListener("keydown", (event) => {
    pointer = false;
    if (event.key === "Escape") {
      event.preventDefault();
      close(true);
    } else if (event.key === "Enter" && event.target.type === "radio") {
      event.preventDefault();
      submit();
    }
  });
  button.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close(true);
    if (event.key === "ArrowDown" && panel.hidden) {
      event.preventDefault();
      open();
    }
  });
  // A preset picked with the pointer applies at once; with the keyboard it waits for Enter or Apply.
  presets.forEach((radio) =>
    radio.addEventListener("change", () => {
      showCustom();
      if (radio.value === "custom") {
        // Custom starts from the days in force, to be narrowed or widened.
        if (!start.value && !end.value) {
          start.value = custom.dataset.start || "";
          end.value = custom.dataset.end || "";
        }
        if (pointer) start.focus();
      } else if (pointer) {
        submit();
      }
    }),
  );
  modes.forEach((radio) => radio.addEventListener("change", showCustom));
  // Typing a date picks Custom.
  for (const field of [start, end]) {
    field.addEventListener("input", () => {
      if (checkedValue(presets) !== "custom") check(presets, "custom");
    });
  }
  // Every submission (Apply range, Enter in a date, the bar's Apply) sends a consistent range.
  form.addEventListener("submit", (event) => {
    if (!prepare()) event.preventDefault();
  });
  // Focus or a click that leaves the picker closes it (unchanged).
  document.addEventListener("pointerdown", (event) => {
    if (!picker.contains(event.target)) close(false);
  });
  picker.addEventListener("focusout", (event) => {
    if (event.relatedTarget && !picker.contains(event.relatedTarget)) close(false);
  });
  // A range the server refused (for example a reversed one) opens with its message.
  if (picker.querySelector(".errors:not(#range-error)")) open();
})();
