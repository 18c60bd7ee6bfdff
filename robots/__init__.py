"""Every robot the app offers. Adding one: its own module, and a line here."""

from robots import (
    assign_from_department,
    check_fields,
    check_margin,
    copy_deal,
    create_task,
    delete_lost,
    find_free_slot,
    route_repeat_client,
    send_sms,
    tracking_link,
    watch_date,
    watch_stage,
)

ROBOTS = [
    copy_deal.ROBOT,
    watch_date.ROBOT,
    tracking_link.ROBOT,
    send_sms.ROBOT,
    create_task.ROBOT,
    check_fields.ROBOT,
    watch_stage.ROBOT,
    check_margin.ROBOT,
    assign_from_department.ROBOT,
    find_free_slot.ROBOT,
    route_repeat_client.ROBOT,
    delete_lost.ROBOT,
]
