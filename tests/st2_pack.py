"""A StackStorm-format pack written as a StackStorm user would, for the compatibility tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

FILES = {
    "pack.yaml": """
        name: st2demo
        description: A pack written for StackStorm
        version: 0.1.0
        stackstorm_version: ">=3.0.0"
        author: st2 user
        email: user@example.com
    """,
    "config.schema.yaml": """
        greeting:
          type: string
          description: How to greet
          default: Hello
        token:
          type: string
          secret: true
          required: false
    """,
    "actions/greet.yaml": """
        name: greet
        runner_type: python-script
        description: Greets someone and remembers who
        enabled: true
        entry_point: greet.py
        parameters:
          name:
            type: string
            required: true
            position: 0
          shout:
            type: boolean
            default: false
    """,
    "actions/greet.py": """
        from st2common.runners.base_action import Action


        class GreetAction(Action):
            def run(self, name, shout=False):
                message = "%s, %s" % (self.config["greeting"], name)
                if shout:
                    message = message.upper()
                self.logger.info("greeting %s", name)
                print("about to greet")
                self.action_service.set_value("last_greeted", name)
                if name == "nobody":
                    return (False, {"message": "nobody to greet"})
                return (True, {"message": message, "previous": self.action_service.get_value("last_greeted")})
    """,
    "actions/flow.yaml": """
        name: flow
        runner_type: orquesta
        description: Greets, then echoes the greeting
        entry_point: workflows/flow.yaml
        parameters:
          name:
            type: string
            default: world
    """,
    "actions/workflows/flow.yaml": """
        version: 1.0
        description: Greet then echo
        input:
          - name
        vars:
          - message: null
        output:
          - message: <% ctx().message %>
          - echoed: "{{ ctx('echoed') }}"
        tasks:
          greet:
            action: st2demo.greet name=<% ctx().name %>
            next:
              - when: <% succeeded() %>
                publish:
                  - message: <% result().result.message %>
                do: echo
              - when: <% failed() %>
                do: fail
          echo:
            action: core.local
            input:
              cmd: "echo '{{ ctx().message }}'"
            next:
              - when: <% succeeded() and result().return_code = 0 %>
                publish: echoed=<% result().stdout %>
    """,
    "actions/hello.yaml": """
        name: hello
        runner_type: local-shell-cmd
        parameters:
          cmd:
            default: "echo hello from st2"
            immutable: true
    """,
    "actions/remote.yaml": """
        name: remote
        runner_type: remote-shell-cmd
        parameters:
          hosts: {type: string}
    """,
    "aliases/greet.yaml": """
        name: greet
        action_ref: st2demo.greet
        formats: ["greet {{ name }}"]
    """,
    "sensors/ticker.yaml": """
        class_name: TickSensor
        entry_point: ticker.py
        description: Counts
        poll_interval: 1
        trigger_types:
          - name: tick
            description: One tick
            payload_schema:
              type: object
              properties:
                count:
                  type: integer
    """,
    "sensors/ticker.py": """
        from st2reactor.sensor.base import PollingSensor


        class TickSensor(PollingSensor):
            def setup(self):
                self.count = 0
                self.log = self.sensor_service.get_logger(__name__)

            def poll(self):
                self.count += 1
                if self.count <= 3:
                    self.sensor_service.dispatch(trigger="st2demo.tick", payload={"count": self.count})

            def cleanup(self):
                pass

            def add_trigger(self, trigger):
                pass

            def update_trigger(self, trigger):
                pass

            def remove_trigger(self, trigger):
                pass
    """,
    "rules/on_tick.yaml": """
        name: on_tick
        pack: st2demo
        description: Greet on the second tick
        enabled: true
        trigger:
          type: st2demo.tick
        criteria:
          trigger.count:
            type: equals
            pattern: 2
        action:
          ref: st2demo.flow
          parameters:
            name: "tick {{ trigger.count }}"
    """,
}


def write_st2_pack(root: Path) -> Path:
    """Write the pack under ``root/st2demo`` and return its directory."""
    pack = root / "st2demo"
    for name, text in FILES.items():
        path = pack / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return pack
