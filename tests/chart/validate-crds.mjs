// Validates custom resources the chart renders (KEDA, Prometheus Operator) against
// their CRD schemas, offline, with the @kubernetes-models packages from the npm
// registry (installed by scripts/provision into $CRD_MODELS_DIR).
//   node validate-crds.mjs manifests.json   (a JSON array of manifests)
import { readFileSync } from "node:fs";
import { join } from "node:path";

const models = join(process.env.CRD_MODELS_DIR ?? "", "node_modules", "@kubernetes-models");
const keda = await import(join(models, "keda", "keda.sh", "v1alpha1", "index.js"));
const prometheus = await import(join(models, "prometheus-operator", "monitoring.coreos.com", "v1", "index.js"));
const kinds = {
  "keda.sh/v1alpha1": { ScaledObject: keda.ScaledObject, TriggerAuthentication: keda.TriggerAuthentication },
  "monitoring.coreos.com/v1": { ServiceMonitor: prometheus.ServiceMonitor },
};

let failures = 0;
for (const file of process.argv.slice(2)) {
  for (const manifest of JSON.parse(readFileSync(file, "utf8"))) {
    const name = `${manifest.kind}/${manifest.metadata?.name}`;
    const Model = kinds[manifest.apiVersion]?.[manifest.kind];
    if (!Model) {
      failures++;
      console.log(`NO SCHEMA ${manifest.apiVersion} ${name}`);
      continue;
    }
    try {
      new Model(manifest).validate();
      console.log(`valid ${name}`);
    } catch (error) {
      failures++;
      console.log(`INVALID ${name}: ${error.message}`);
    }
  }
}
process.exit(failures ? 1 : 0);
