"""Messages members act on: one e-mail per member with something to say, in the member's language.

``plan``: what to say to whom (new problems, reminders due by severity, what was fixed), from the latest
run in the history store and the record of what was already sent (``sent``); ``message``: the multipart
e-mail (plain text + HTML, no link, no external resource); ``smtp``: delivery (STARTTLS when offered,
credentials from the environment). ``scanner.cli.notify`` is the ``pledgescan notify`` command.
"""
