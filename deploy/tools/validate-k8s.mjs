// Offline validation of deploy/kubernetes/*.yaml:
//  1. every object against its OpenAPI schema (npm kubernetes-models and
//     @kubernetes-models/prometheus-operator): wrong types, missing required fields, bad
//     enums and patterns (durations, quantities). Unknown fields are NOT rejected by these
//     schemas, so
//  2. the properties the exporter depends on are asserted one by one, and the objects are
//     checked against each other (selectors, ports, ConfigMap name, namespace).
//
//   node validate-k8s.mjs [--config-out FILE] MANIFEST.yaml...
// --config-out writes the ConfigMap's config.yml, for `pidfd_exporter --config.check`.
// Prints one line per object and per assertion; exit 1 on any failure.
import fs from 'node:fs';
import * as yaml from 'js-yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';

const kinds = {
  'apps/v1/DaemonSet': DaemonSet,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

const args = process.argv.slice(2);
let configOut = null;
if (args[0] === '--config-out') { configOut = args[1]; args.splice(0, 2); }

let failures = 0;
const ok = (msg) => console.log(`ok   ${msg}`);
const bad = (msg) => { failures++; console.log(`FAIL ${msg}`); };
const expect = (cond, msg) => (cond ? ok(msg) : bad(msg));

const objects = [];
for (const file of args) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter(Boolean);
  } catch (e) {
    bad(`${file}: ${e.message}`);
    continue;
  }
  for (const doc of docs) {
    const id = `${file}: ${doc.kind}/${doc.metadata?.name}`;
    const Kind = kinds[`${doc.apiVersion}/${doc.kind}`];
    if (!Kind) { bad(`${id}: no schema for ${doc.apiVersion} ${doc.kind}`); continue; }
    try {
      new Kind(doc).validate();
      ok(`${id}: schema`);
    } catch (e) {
      bad(`${id}: ${e.message}`);
    }
    objects.push(doc);
  }
}

const one = (kind) => {
  const found = objects.filter((o) => o.kind === kind);
  expect(found.length === 1, `exactly one ${kind} (${found.length})`);
  return found[0];
};
const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector ?? {}).length > 0;

const ds = one('DaemonSet');
const cm = one('ConfigMap');
const svc = one('Service');
const pm = one('PodMonitor');
one('PrometheusRule');

const namespaces = new Set(objects.map((o) => o.metadata?.namespace));
expect(namespaces.size === 1 && !namespaces.has(undefined), `one namespace for all objects (${[...namespaces]})`);

if (ds) {
  const pod = ds.spec?.template?.spec ?? {};
  const podLabels = ds.spec?.template?.metadata?.labels;
  const c = (pod.containers ?? [])[0] ?? {};
  const sc = c.securityContext ?? {};
  expect(matches(ds.spec?.selector?.matchLabels, podLabels), 'DaemonSet selector matches its pod labels');
  expect(pod.hostPID === true, 'hostPID: true (pidfd_open needs the node\'s PID namespace)');
  expect(pod.hostNetwork !== true, 'hostNetwork off by default (optional, for the proc connector)');
  expect((pod.tolerations ?? []).some((t) => t.operator === 'Exists' && !t.key && !t.effect),
         'tolerations: operator Exists (every node)');
  expect(JSON.stringify(sc.capabilities?.drop) === '["ALL"]', 'capabilities.drop: [ALL]');
  expect(JSON.stringify(sc.capabilities?.add) === '["SYS_PTRACE"]', 'capabilities.add: [SYS_PTRACE] only');
  expect(sc.readOnlyRootFilesystem === true, 'readOnlyRootFilesystem: true');
  expect(sc.allowPrivilegeEscalation === false, 'allowPrivilegeEscalation: false');
  expect(sc.privileged !== true, 'not privileged');
  expect(sc.runAsUser === 0, 'runAsUser: 0 (capabilities.add is not effective for non-root users under CRI)');
  expect(sc.seccompProfile?.type === 'RuntimeDefault', 'seccompProfile: RuntimeDefault');
  const port = (c.ports ?? []).find((p) => p.name === 'metrics');
  expect(port?.containerPort === 9721, 'container port "metrics" is 9721');
  expect((c.args ?? []).includes('--web.listen-address=:9721'), 'listens on :9721');
  expect(c.livenessProbe?.httpGet?.path === '/-/healthy' && c.livenessProbe?.httpGet?.port === 'metrics',
         'livenessProbe: GET /-/healthy on metrics');
  expect(c.readinessProbe?.httpGet?.path === '/-/ready' && c.readinessProbe?.httpGet?.port === 'metrics',
         'readinessProbe: GET /-/ready on metrics');
  const configArg = (c.args ?? []).find((a) => a.startsWith('--config.file='));
  const mount = (c.volumeMounts ?? []).find((m) => configArg?.startsWith(`--config.file=${m.mountPath}/`));
  const volume = (pod.volumes ?? []).find((v) => v.name === mount?.name);
  const key = configArg?.slice(`--config.file=${mount?.mountPath}/`.length);
  expect(mount && volume?.configMap?.name === cm?.metadata?.name && cm?.data?.[key] !== undefined,
         `--config.file is key "${key}" of ConfigMap ${cm?.metadata?.name}, mounted at ${mount?.mountPath}`);
  if (svc) {
    expect(matches(svc.spec?.selector, podLabels), 'Service selects the DaemonSet pods');
    expect((svc.spec?.ports ?? []).some((p) => p.targetPort === 'metrics' || p.targetPort === 9721),
           'Service targets the metrics port');
  }
  if (pm) {
    expect(matches(pm.spec?.selector?.matchLabels, podLabels), 'PodMonitor selects the DaemonSet pods');
    expect((pm.spec?.podMetricsEndpoints ?? []).every((e) => e.port === 'metrics'),
           'PodMonitor scrapes the metrics port');
    const relabel = (pm.spec?.podMetricsEndpoints?.[0]?.relabelings ?? []);
    expect(relabel.some((r) => r.targetLabel === 'job' && r.replacement === 'pidfd_exporter'),
           'PodMonitor sets job="pidfd_exporter" (the rules\' meta alerts select it)');
  }
  if (configOut && cm && key) fs.writeFileSync(configOut, cm.data[key]);
}

console.log(`validate-k8s: ${failures ? 'FAILED' : 'ok'} (${objects.length} objects, ${failures} failures)`);
process.exit(failures ? 1 : 0);
