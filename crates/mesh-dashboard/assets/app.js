// MCP Mesh dashboard: progressive enhancement only. Every page works without this file.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  // Selects that choose something submit their form at once.
  for (const el of document.querySelectorAll('select[data-autosubmit]')) {
    el.addEventListener('change', () => el.form && el.form.requestSubmit());
  }

  // Hidden fields that carry another field's current value when their form is sent (the
  // virtual MCP editor's name, title, failure mode and strategy across a new pick of connections).
  for (const form of document.querySelectorAll('form')) {
    form.addEventListener('submit', () => {
      for (const hidden of form.querySelectorAll('input[data-mirror]')) {
        const source = document.getElementById(hidden.dataset.mirror);
        if (source) hidden.value = source.value;
      }
    });
  }

  // Destructive buttons ask first.
  for (const el of document.querySelectorAll('button[data-confirm]')) {
    el.addEventListener('click', (e) => {
      if (!window.confirm(el.dataset.confirm)) e.preventDefault();
    });
  }

  // Copy buttons.
  for (const el of document.querySelectorAll('button[data-copy]')) {
    el.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(el.dataset.copy);
        el.textContent = 'Copied';
      } catch {
        el.textContent = 'Select and copy';
      }
    });
  }

  // Live parts of a page (the overview's counts and charts) refresh every 15 s while it is shown.
  const live = document.querySelectorAll('[data-live][id]');
  if (live.length) {
    setInterval(async () => {
      if (document.hidden) return;
      try {
        const resp = await fetch(window.location.href, { credentials: 'same-origin' });
        if (!resp.ok) return;
        const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
        for (const el of document.querySelectorAll('[data-live][id]')) {
          const fresh = doc.getElementById(el.id);
          if (fresh) el.replaceWith(document.importNode(fresh, true));
        }
      } catch {
        // Offline for a moment: the next tick tries again.
      }
    }, 15000);
  }

  // The virtual MCP editor checks names while you edit (the server's own check).
  const editor = document.querySelector('form[data-check]');
  if (editor) {
    const target = () => document.getElementById('check');
    let timer = null;
    const check = async () => {
      const body = new URLSearchParams(new FormData(editor));
      try {
        const resp = await fetch(editor.dataset.check, {
          method: 'POST',
          headers: { 'X-Fragment': '1', 'Content-Type': 'application/x-www-form-urlencoded' },
          body,
          credentials: 'same-origin',
        });
        if (resp.ok && target()) {
          const doc = new DOMParser().parseFromString(await resp.text(), 'text/html');
          const fresh = doc.getElementById('check');
          if (fresh) target().replaceWith(document.importNode(fresh, true));
        }
      } catch {
        // Offline or refused: the "Check names" button still works.
      }
    };
    editor.addEventListener('change', () => {
      clearTimeout(timer);
      timer = setTimeout(check, 300);
    });
  }
});
