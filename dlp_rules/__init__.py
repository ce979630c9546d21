"""DLP policies as data: YAML rule files with their test cases beside them.

``active.yaml`` lists what ``vigil run`` applies by default; ``template.yaml`` is where a new policy
starts. The files ship as package data so an installed Vigil finds them next to this module.
"""
