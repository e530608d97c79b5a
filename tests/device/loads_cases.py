# argv: CASES.json (a list of {"text": str} or {"hex": bytes as hex}).
# Prints a JSON list: per case ["ok", hosts] or [exception type, message].
import json
import sys
from binascii import unhexlify

import certpin

out = []
for case in json.load(open(sys.argv[1])):
    data = case["text"] if "text" in case else unhexlify(case["hex"])
    try:
        ps = certpin.loads(data)
        out.append(["ok", [[h, ps.pins(h)] for h in ps.hosts()]])
    except Exception as e:
        out.append([type(e).__name__, e.args[0] if e.args else ""])
print(json.dumps(out))
