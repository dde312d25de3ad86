// Every form of the model console that changes what the models do asks first: its
// data-confirm attribute says what will happen.
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
