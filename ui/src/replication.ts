// The replication panel: which member of a replicated store serves, the
// members and their roles, what an acknowledgement means, the failovers seen,
// and a detected loss of acknowledged writes (as an alert: until an operator
// accepts it, every operation fails with ERR_DATA_LOST). Refreshed from
// GET /v1/info every few seconds, so a failover shows without a reload.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import type { Api, Replication } from './api';

const REFRESH_MS = 5_000;

export function ReplicationPanel({ api, initial, backend }: { api: Api; initial: Replication | null | undefined; backend: string }) {
  const [state, setState] = useState<Replication | null | undefined>(initial);
  useEffect(() => {
    const timer = setInterval(() => { api.info().then((i) => setState(i.replication), () => undefined); }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [api]);
  if (state === undefined) return null;
  if (state === null) return html`<section class="replication" aria-label="Replication" data-testid="replication"><span class="muted">replication: none (${backend})</span></section>`;
  const lost = state.lost;
  return html`<section class="replication" aria-label="Replication" data-testid="replication">
    <details>
      <summary>serving <strong data-testid="serving">${state.serving ?? 'nobody'}</strong> · <span class="badge">${state.durability}</span> · ${state.failovers} failover${state.failovers === 1 ? '' : 's'}</summary>
      <p class="muted">${state.note}</p>
      <table class="members">
        <caption class="sr-only">Members</caption>
        <thead><tr><th scope="col">member</th><th scope="col">role</th><th scope="col">state</th></tr></thead>
        <tbody>${state.members.map((m) => html`<tr><td>${m.address}</td><td>${m.role}</td><td>${m.state ?? '—'}</td></tr>`)}</tbody>
      </table>
    </details>
    ${lost ? html`<p class="notice error" role="alert" data-testid="data-lost">Acknowledged writes lost${lost.after !== undefined && lost.upTo !== undefined ? ` (revisions ${lost.after + 1}–${lost.upTo})` : ''}: ${lost.message}. Every operation fails until an operator accepts the loss (revkit accept-loss).</p>` : null}
  </section>`;
}
