"""Deployment validation: kustomize, schemas, checkov, dashboards against live metrics."""
