// Modal dialogs and the row menu. Dialogs are native <dialog> elements opened with
// showModal(): the rest of the page is inert (focus stays inside) and Escape closes them.

const openers = new WeakMap();

/** Opens `dialog` modally; when it closes, focus returns to `opener` if still on the page. */
export function openDialog(dialog, opener) {
  openers.set(dialog, opener || document.activeElement);
  dialog.showModal();
  // A long form opens at its top again, not where it was scrolled to last time (once shown:
  // a closed dialog has no box to scroll).
  for (const body of dialog.querySelectorAll('.dialog-body')) body.scrollTop = 0;
  const first = dialog.querySelector('[autofocus]') ||
    dialog.querySelector('input:not([disabled]):not([type=hidden]), select, textarea, button');
  if (first) first.focus();
}

/** Where focus goes when `dialog` closes (e.g. when its opener is about to disappear). */
export function returnFocusTo(dialog, target) {
  openers.set(dialog, target);
}

/** Wires every dialog: buttons marked data-close close it; focus goes back on close. */
export function initDialogs() {
  for (const dialog of document.querySelectorAll('dialog')) {
    for (const b of dialog.querySelectorAll('[data-close]')) {
      b.addEventListener('click', () => dialog.close());
    }
    dialog.addEventListener('keydown', (e) => trapTab(dialog, e));
    dialog.addEventListener('close', () => {
      const opener = openers.get(dialog);
      openers.delete(dialog);
      // A re-rendered table replaces the opener (a row's menu button) with a new element
      // of the same id: focus that one, else fall back to Add Token.
      const again = opener && !opener.isConnected && opener.id
        ? document.getElementById(opener.id) : null;
      const target = opener && opener.isConnected
        ? opener : again || document.getElementById('add-token');
      if (target && !target.closest('[hidden]')) target.focus();
    });
  }
}

const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])';

/** Keeps Tab and Shift+Tab inside a modal dialog (a modal <dialog> alone lets focus leave
 * for the browser's own controls). */
function trapTab(dialog, e) {
  if (e.key !== 'Tab') return;
  const items = [...dialog.querySelectorAll(FOCUSABLE)]
    .filter((x) => !x.disabled && x.tabIndex >= 0 && x.getClientRects().length > 0);
  if (items.length === 0) return;
  const first = items[0];
  const last = items[items.length - 1];
  // Radio groups are one Tab stop: treat any radio of the first/last group as the end.
  const at = (x) => document.activeElement === x ||
    (x.type === 'radio' && document.activeElement.name === x.name);
  if (e.shiftKey && at(first)) {
    e.preventDefault();
    last.focus();
  } else if (!e.shiftKey && at(last)) {
    e.preventDefault();
    first.focus();
  }
}

let openMenu = null;

/** Closes the open row menu, if any; focus returns to its button when `refocus`. */
export function closeMenu(refocus = false) {
  if (!openMenu) return;
  const { menu, button } = openMenu;
  openMenu = null;
  menu.remove();
  button.setAttribute('aria-expanded', 'false');
  if (refocus) button.focus();
}

/**
 * Opens a menu (role `menu`) below `button` with `items` ([label, action]). Arrow keys move,
 * Home/End jump, Escape closes, Tab leaves.
 */
export function showMenu(button, items) {
  closeMenu();
  const menu = document.createElement('ul');
  menu.className = 'menu';
  menu.setAttribute('role', 'menu');
  menu.id = `${button.id}-menu`;
  menu.setAttribute('aria-labelledby', button.id);
  const buttons = items.map(([label, action]) => {
    const li = document.createElement('li');
    li.setAttribute('role', 'none');
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'menuitem');
    b.tabIndex = -1;
    b.textContent = label;
    b.addEventListener('click', () => {
      closeMenu();
      action(button);
    });
    li.append(b);
    menu.append(li);
    return b;
  });
  menu.addEventListener('keydown', (e) => {
    const i = buttons.indexOf(document.activeElement);
    const move = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: buttons.length - 1 }[e.key];
    if (move !== undefined) {
      e.preventDefault();
      buttons[(move + buttons.length) % buttons.length].focus();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      closeMenu(true);
    } else if (e.key === 'Tab') {
      closeMenu();
    }
  });
  button.after(menu);
  placeMenu(menu, button);
  button.setAttribute('aria-expanded', 'true');
  button.setAttribute('aria-controls', menu.id);
  openMenu = { menu, button };
  buttons[0].focus({ preventScroll: true });
}

/**
 * The menu is `position: fixed` at the button's viewport rectangle, so the table's scroll box
 * (`.table-wrap`, overflow-x: auto) cannot clip it: below the button when it fits, else above,
 * and never past the window's right or left edge.
 */
function placeMenu(menu, button) {
  const r = button.getBoundingClientRect();
  const m = menu.getBoundingClientRect();
  const gap = 2;
  let top = r.bottom + gap;
  if (top + m.height > window.innerHeight && r.top - gap - m.height >= 0) top = r.top - gap - m.height;
  top = Math.max(0, Math.min(top, window.innerHeight - m.height));
  const left = Math.max(0, Math.min(r.right - m.width, window.innerWidth - m.width));
  menu.style.top = `${top}px`;
  menu.style.left = `${left}px`;
}

// A fixed menu would float away from its row when the page or the table scrolls: move it along.
function followButton() {
  if (openMenu) placeMenu(openMenu.menu, openMenu.button);
}
window.addEventListener('scroll', followButton, true);
window.addEventListener('resize', followButton);

document.addEventListener('click', (e) => {
  if (openMenu && !openMenu.menu.contains(e.target) && e.target !== openMenu.button) closeMenu();
});
