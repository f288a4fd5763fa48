// "Copy" buttons beside a value shown once (a new API token): data-copy names the element whose text is
// copied. The Clipboard API needs a secure context (HTTPS or localhost); elsewhere the text is selected
// so Ctrl+C copies it.
document.querySelectorAll("button[data-copy]").forEach(button => {
  const source = document.getElementById(button.dataset.copy);
  const label = button.textContent;
  const say = text => {
    button.textContent = text;
    setTimeout(() => { button.textContent = label; }, 2000);
  };
  const select = () => {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  };
  button.addEventListener("click", () => {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.textContent.trim()).then(() => say("Copied"), () => {
        select();
        say("Press Ctrl+C");
      });
    } else {
      select();
      say("Press Ctrl+C");
    }
  });
});
