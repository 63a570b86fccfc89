/**
 * Accessible names for the inputs of Lab's form templates: they show a field's title as
 * a heading, not as a `<label>`, so screen readers (and axe's "label" rule) find no name.
 */
export function labelFormInputs(root: HTMLElement): void {
  const controls = root.querySelectorAll<HTMLElement>(
    'input, select, textarea'
  );
  controls.forEach(control => {
    if (
      control.getAttribute('aria-label') ||
      control.closest('label') ||
      (control.id &&
        root.querySelector(`label[for="${CSS.escape(control.id)}"]`))
    ) {
      return;
    }
    const group = control.closest('.jp-FormGroup-content');
    const title = group
      ?.querySelector('.jp-FormGroup-fieldLabel')
      ?.textContent?.trim();
    const name = title || control.id.split('_').pop()?.replace(/-/g, ' ') || '';
    if (name) {
      control.setAttribute('aria-label', name);
    }
  });
}
