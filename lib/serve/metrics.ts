// Prometheus text exposition (format 0.0.4) for the HTTP service: request counts by route,
// method and status, a latency histogram per route, and model info. Kept by hand (a few
// counters) rather than with a client library.

/** Latency buckets, seconds. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(o: Record<string, string>): string {
  return '{' + Object.entries(o).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',') + '}';
}

export class ServiceMetrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly info: Record<string, string>;
  private readonly started = Date.now();
  /** Users scored (a batch request counts each of its users). */
  usersScored = 0;

  constructor(info: Record<string, string>) {
    this.info = info;
  }

  observe(route: string, method: string, status: number, seconds: number): void {
    const key = JSON.stringify([route, method, String(status)]);
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const hkey = JSON.stringify([route, method]);
    let h = this.latency.get(hkey);
    if (!h) {
      h = { counts: new Array(LATENCY_BUCKETS.length).fill(0), sum: 0, count: 0 };
      this.latency.set(hkey, h);
    }
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) if (seconds <= LATENCY_BUCKETS[i]) h.counts[i]++;
    h.sum += seconds;
    h.count++;
  }

  render(): string {
    const out: string[] = [];
    out.push('# HELP tokenrec_http_requests_total HTTP requests answered, by route, method and status.');
    out.push('# TYPE tokenrec_http_requests_total counter');
    for (const [key, n] of [...this.requests].sort()) {
      const [route, method, status] = JSON.parse(key) as string[];
      out.push(`tokenrec_http_requests_total${labels({ route, method, status })} ${n}`);
    }
    out.push('# HELP tokenrec_http_request_duration_seconds Time from request start to response, by route and method.');
    out.push('# TYPE tokenrec_http_request_duration_seconds histogram');
    for (const [key, h] of [...this.latency].sort()) {
      const [route, method] = JSON.parse(key) as string[];
      LATENCY_BUCKETS.forEach((le, i) => out.push(`tokenrec_http_request_duration_seconds_bucket${labels({ route, method, le: String(le) })} ${h.counts[i]}`));
      out.push(`tokenrec_http_request_duration_seconds_bucket${labels({ route, method, le: '+Inf' })} ${h.count}`);
      out.push(`tokenrec_http_request_duration_seconds_sum${labels({ route, method })} ${h.sum}`);
      out.push(`tokenrec_http_request_duration_seconds_count${labels({ route, method })} ${h.count}`);
    }
    out.push('# HELP tokenrec_users_scored_total Users (requests) recommended for.');
    out.push('# TYPE tokenrec_users_scored_total counter');
    out.push(`tokenrec_users_scored_total ${this.usersScored}`);
    out.push('# HELP tokenrec_model_info The served model (value 1).');
    out.push('# TYPE tokenrec_model_info gauge');
    out.push(`tokenrec_model_info${labels(this.info)} 1`);
    out.push('# HELP tokenrec_uptime_seconds Seconds since the service started.');
    out.push('# TYPE tokenrec_uptime_seconds gauge');
    out.push(`tokenrec_uptime_seconds ${(Date.now() - this.started) / 1000}`);
    return out.join('\n') + '\n';
  }
}
