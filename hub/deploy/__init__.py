"""Deployment artefacts rendered from a config directory: Kubernetes manifests (``xhub k8s``).

Why a small renderer instead of a Helm chart or a kustomize base: what a cluster needs follows from the
config directory (the hub's ports and secret names, the departments' resources and subscriptions, the
ConfigMap of the files themselves), and the project already reads that directory one way (``hub.config``).
A chart would read it a second way in Go templates. The output is plain YAML that ``kubectl apply -f``
takes, and that kustomize can patch as a base.

- ``manifest``: what every manifest shares (names, labels, config volume, pod security, YAML output);
- ``configmap``: the config directory as a ConfigMap, with the cluster's Kafka and registry in hubs.yaml;
- ``hub``: the hub's workers, their services, disruption budget and ServiceMonitor; the shared registry;
- ``department``: a department application's pod with the connector as a sidecar container;
- ``render``: the settings and the files written.
"""
