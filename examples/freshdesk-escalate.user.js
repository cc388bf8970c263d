// ==UserScript==
// @name         Escalate to GitLab (rp-devops)
// @namespace    rp-devops
// @version      1.0.0
// @description  Adds an "Escalate to GitLab" button to the Freshdesk ticket view. One click copies the ticket, every conversation and attachment into one GitLab issue (through rp-devops serve) and shows the issue link.
// @match        https://*.freshdesk.com/a/*
// @grant        GM_xmlhttpRequest
// @grant        GM_getValue
// @grant        GM_setValue
// @grant        GM_registerMenuCommand
// @connect      rp-devops.example.com
// @run-at       document-idle
// @noframes
// ==/UserScript==

// Installing: see "The Escalate button" in rp-devops's README. Change
// DEFAULT_ENDPOINT and the @connect line above to your rp-devops host.
// The token is never in this file: each agent enters it once, and
// Tampermonkey keeps it in this script's storage (menu: "rp-devops: set
// token" changes it).

(function () {
  'use strict';

  const DEFAULT_ENDPOINT = 'https://rp-devops.example.com';
  const CONTAINER_ID = 'rp-devops-escalate';
  // Freshdesk's agent UI is a single-page app: the ticket view is
  // /a/tickets/<number>, reached without a page load.
  const TICKET_PATH = /^\/a\/tickets\/(\d+)(?:\/|$)/;
  // Where the button goes when Freshdesk's own toolbar is found; otherwise
  // it floats at the bottom right of the page.
  const TOOLBAR_SELECTORS = [
    '[data-test-id="ticket-top-navbar"] .page-actions',
    '.ticket-details-header .page-actions',
    '.page-actions__right',
  ];

  function endpoint() {
    return String(GM_getValue('endpoint', DEFAULT_ENDPOINT) || DEFAULT_ENDPOINT).replace(/\/+$/, '');
  }

  function askToken() {
    const token = window.prompt(
      'rp-devops escalation token (asked once; kept in Tampermonkey\'s storage for this script):',
      ''
    );
    if (token && token.trim()) {
      GM_setValue('token', token.trim());
      return token.trim();
    }
    return null;
  }

  function ticketId() {
    const match = TICKET_PATH.exec(window.location.pathname);
    return match ? match[1] : null;
  }

  function style(element, css) {
    Object.assign(element.style, css);
    return element;
  }

  function createContainer() {
    const container = document.createElement('div');
    container.id = CONTAINER_ID;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'rp-devops-escalate-button';
    button.textContent = 'Escalate to GitLab';
    style(button, {
      background: '#6b4fbb', color: '#fff', border: '0', borderRadius: '4px',
      padding: '6px 12px', font: '600 13px sans-serif', cursor: 'pointer',
    });
    button.addEventListener('click', onClick);
    const status = document.createElement('span');
    status.className = 'rp-devops-escalate-status';
    style(status, { marginLeft: '8px', font: '13px sans-serif' });
    container.append(button, status);
    const toolbar = TOOLBAR_SELECTORS.map((s) => document.querySelector(s)).find(Boolean);
    if (toolbar) {
      style(container, { display: 'inline-flex', alignItems: 'center', marginLeft: '8px' });
      toolbar.appendChild(container);
    } else {
      style(container, {
        position: 'fixed', right: '16px', bottom: '16px', zIndex: '2147483647',
        display: 'flex', alignItems: 'center', background: '#fff', padding: '8px',
        borderRadius: '6px', boxShadow: '0 2px 8px rgba(0,0,0,.25)',
      });
      document.body.appendChild(container);
    }
    return container;
  }

  // Exactly one button while a ticket is shown, none elsewhere; a new
  // ticket resets the status line.
  function sync() {
    const id = ticketId();
    let container = document.getElementById(CONTAINER_ID);
    if (!id) {
      if (container) container.remove();
      return;
    }
    if (!container) container = createContainer();
    if (container.dataset.ticket !== id) {
      container.dataset.ticket = id;
      setStatus(container, '');
      const button = container.querySelector('button');
      button.disabled = false;
      button.title = 'Copy ticket #' + id + ' with its conversations and attachments into one GitLab issue';
    }
  }

  function setStatus(container, text, color) {
    const status = container.querySelector('.rp-devops-escalate-status');
    status.replaceChildren();
    status.style.color = color || '#333';
    if (text) status.textContent = text;
    return status;
  }

  function showIssue(container, issue, action, notesAdded) {
    const status = setStatus(container, '');
    const url = String(issue.web_url || '');
    if (!/^https?:\/\//.test(url)) {
      setStatus(container, 'rp-devops answered without an issue link', '#b00020');
      return;
    }
    const words = {
      created: 'Created ',
      synced: 'Already escalated, ' + notesAdded + ' new note(s) copied: ',
      unchanged: 'Already escalated: ',
    };
    status.append(document.createTextNode(words[action] || 'GitLab issue: '));
    const link = document.createElement('a');
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    link.className = 'rp-devops-issue-link';
    link.textContent = 'issue #' + issue.iid;
    status.append(link);
  }

  function onClick() {
    const container = document.getElementById(CONTAINER_ID);
    const id = container && container.dataset.ticket;
    if (!id) return;
    if (!window.confirm('Escalate ticket #' + id + ' to GitLab?\n\nThe ticket, every conversation and attachment are copied into one GitLab issue (or the existing one is brought up to date).')) {
      return;
    }
    const token = GM_getValue('token', '') || askToken();
    if (!token) {
      setStatus(container, 'No token entered: nothing was sent.', '#b00020');
      return;
    }
    const button = container.querySelector('button');
    button.disabled = true;
    setStatus(container, 'Escalating ticket #' + id + '…');
    const base = endpoint();
    const done = (render) => {
      // The agent may have moved to another ticket meanwhile.
      const now = document.getElementById(CONTAINER_ID);
      if (!now || now.dataset.ticket !== id) return;
      now.querySelector('button').disabled = false;
      render(now);
    };
    GM_xmlhttpRequest({
      method: 'POST',
      url: base + '/api/v1/escalations/' + encodeURIComponent(id),
      headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
      data: '{}',
      timeout: 180000,
      onload(response) {
        let body = null;
        try {
          body = JSON.parse(response.responseText);
        } catch (e) {
          body = null;
        }
        done((c) => {
          if ((response.status === 200 || response.status === 201) && body && body.issue) {
            showIssue(c, body.issue, body.action, body.notes_added || 0);
            return;
          }
          if (response.status === 401) GM_setValue('token', '');
          const why = body && body.error ? body.error : 'HTTP ' + response.status;
          const hint = response.status === 401 ? ' Click again to enter the token.' : '';
          setStatus(c, 'Escalation failed (' + response.status + '): ' + why + hint, '#b00020');
        });
      },
      onerror() {
        done((c) => setStatus(c, 'Could not reach rp-devops at ' + base + ': is it running, and is the address right?', '#b00020'));
      },
      ontimeout() {
        done((c) => setStatus(c, 'rp-devops did not answer in time; click again in a minute to see the issue.', '#b00020'));
      },
    });
  }

  if (typeof GM_registerMenuCommand === 'function') {
    GM_registerMenuCommand('rp-devops: set token', askToken);
    GM_registerMenuCommand('rp-devops: set endpoint', () => {
      const value = window.prompt('rp-devops address (as in @connect):', endpoint());
      if (value && /^https?:\/\//.test(value.trim())) GM_setValue('endpoint', value.trim());
    });
  }

  sync();
  new MutationObserver(sync).observe(document.body, { childList: true, subtree: true });
  window.addEventListener('popstate', sync);
  // pushState does not fire an event; a cheap check catches it.
  setInterval(sync, 500);
})();
