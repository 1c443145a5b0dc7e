"""The adversarial suite of issue 21: one test per probe of the issue that no other test covers, each
reproducing the probe through the real command or API and asserting the fixed behaviour. docs/robustness.md
lists every probe with its verdict before and after and the test (here or elsewhere) that checks it."""
