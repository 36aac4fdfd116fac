"""Seed data: the real forwarding channels under the Central Organization Department (中共中央组织部).

``channels.json`` holds, as data, the root (``central``) and every channel that hands voluntary extra dues
of 1000 yuan or more to central: the 31 provincial-level party committee organization departments
(``"group": "province"``), the Xinjiang Production and Construction Corps (``"corps"``) and the central
channels (``"central"``), each with a stable ASCII ``code``, its current official ``name``, the
``short_name`` in everyday use and, for provinces, the two-digit GB/T 2260 ``region_code``. Its
``source`` note says where the list comes from, when it was checked and which choices were made.
"""
